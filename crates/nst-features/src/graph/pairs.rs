//! The graphs of the optimizer's correction pairs on the device ([`crate::DevicePairs`]):
//! `c` slots of `n` variables, `S` and `Y` (`[c, n]` each), in fp32.

use super::builder::{Dim, GraphBuilder, int};
use crate::Error;
use onnx_protobuf::ModelProto;

/// The pairs as graph inputs `S` and `Y`, `[c, n]`.
fn pairs_inputs(b: &mut GraphBuilder, c: i64, n: i64) -> Result<(), Error> {
    b.input("S", &[Dim::Fixed(c), Dim::Fixed(n)])?;
    b.input("Y", &[Dim::Fixed(c), Dim::Fixed(n)])?;
    Ok(())
}

/// `dots = [v·Yᵀ, v·Sᵀ]` (`[rows, 2c]`) for the `[rows, n]` tensor `v`.
fn products(b: &mut GraphBuilder, v: &str, c: i64) -> Result<(), Error> {
    let trans_b = || vec![int("transB", 1)];
    b.wire("with_y", "Gemm", &[v, "Y"], trans_b())?;
    b.wire("with_s", "Gemm", &[v, "S"], trans_b())?;
    b.wire("dots", "Concat", &["with_y", "with_s"], vec![int("axis", 1)])?;
    b.output("dots", &[Dim::Named("rows"), Dim::Fixed(2 * c)])
}

/// Zeros for both pairs' tensors.
pub fn zeros_graph(c: i64, n: i64) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("pairs_zeros");
    b.constant_i64("shape", &[2], &[c, n])?;
    for name in ["zero_s", "zero_y"] {
        b.wire(name, "ConstantOfShape", &["shape"], vec![])?;
        b.output(name, &[Dim::Fixed(c), Dim::Fixed(n)])?;
    }
    Ok(b.finish())
}

/// Stores `s` and `y` (`[1, n]`) through the outputs `s_copy` and `y_copy`, which are bound to
/// a slot's rows, and gives their products with every slot.
pub fn store_graph(c: i64, n: i64) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("pairs_store");
    pairs_inputs(&mut b, c, n)?;
    b.input("s", &[Dim::Fixed(1), Dim::Fixed(n)])?;
    b.input("y", &[Dim::Fixed(1), Dim::Fixed(n)])?;
    b.wire("sy", "Concat", &["s", "y"], vec![int("axis", 0)])?;
    products(&mut b, "sy", c)?;
    b.constant_i64("row", &[1], &[n])?;
    for (from, to) in [("s", "s_copy"), ("y", "y_copy")] {
        b.wire(to, "Reshape", &[from, "row"], vec![])?;
        b.output(to, &[Dim::Fixed(n)])?;
    }
    Ok(b.finish())
}

/// The products of the rows of `v` (`[rows, n]`) with every slot.
pub fn dots_graph(c: i64, n: i64) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("pairs_dots");
    pairs_inputs(&mut b, c, n)?;
    b.input("v", &[Dim::Named("rows"), Dim::Fixed(n)])?;
    products(&mut b, "v", c)?;
    Ok(b.finish())
}

/// `sum = out + a·Y + b·S`, `a` and `b` `[1, c]`, `out` `[1, n]`.
pub fn combine_graph(c: i64, n: i64) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("pairs_combine");
    pairs_inputs(&mut b, c, n)?;
    b.input("a", &[Dim::Fixed(1), Dim::Fixed(c)])?;
    b.input("b", &[Dim::Fixed(1), Dim::Fixed(c)])?;
    b.input("out", &[Dim::Fixed(1), Dim::Fixed(n)])?;
    b.wire("along_y", "Gemm", &["a", "Y", "out"], vec![])?;
    b.wire("sum", "Gemm", &["b", "S", "along_y"], vec![])?;
    b.output("sum", &[Dim::Fixed(1), Dim::Fixed(n)])?;
    Ok(b.finish())
}
