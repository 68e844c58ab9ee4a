//! A small ONNX graph builder: `wire(name, op, inputs, attributes)` appends a
//! node whose single output carries the node's name (`wire_outputs` names several), refusing duplicate names
//! and inputs that nothing defines, so every tensor is readable and stable
//! (`relu3_1`, `grad/relu3_1`).

use crate::Error;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Tensor as TensorType};
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use std::collections::HashSet;

/// The ONNX opset the graphs target.
pub const OPSET: i64 = 17;

/// A dimension of a graph input or output.
#[derive(Clone, Copy, Debug)]
pub enum Dim<'a> {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size, fixed per run (`height`).
    Named(&'a str),
}

/// Builds one graph; see the module docs.
pub struct GraphBuilder {
    graph: GraphProto,
    names: HashSet<String>,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Self { graph: GraphProto { name: name.into(), ..Default::default() }, names: HashSet::new() }
    }

    fn claim(&mut self, name: &str, op: &str) -> Result<(), Error> {
        if !self.names.insert(name.to_string()) {
            return Err(Error::Graph { node: name.into(), op: op.into(), reason: "name already defined".into() });
        }
        Ok(())
    }

    /// `true` when a tensor of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Declares a float graph input.
    pub fn input(&mut self, name: &str, dims: &[Dim<'_>]) -> Result<String, Error> {
        self.claim(name, "input")?;
        self.graph.input.push(value_info(name, dims));
        Ok(name.into())
    }

    /// Declares an existing tensor as a float graph output.
    pub fn output(&mut self, name: &str, dims: &[Dim<'_>]) -> Result<(), Error> {
        if !self.names.contains(name) {
            return Err(Error::Graph { node: name.into(), op: "output".into(), reason: "no such tensor".into() });
        }
        self.graph.output.push(value_info(name, dims));
        Ok(())
    }

    fn initializer(
        &mut self,
        name: &str,
        dims: &[i64],
        data_type: DataType,
        raw_data: Vec<u8>,
    ) -> Result<String, Error> {
        self.claim(name, "initializer")?;
        self.graph.initializer.push(TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: data_type as i32,
            raw_data,
            ..Default::default()
        });
        Ok(name.into())
    }

    /// A float32 constant (an initializer).
    pub fn constant(&mut self, name: &str, dims: &[i64], data: &[f32]) -> Result<String, Error> {
        self.initializer(name, dims, DataType::FLOAT, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A float16 constant (an initializer) of `data` rounded to the nearest fp16.
    pub fn constant_f16(&mut self, name: &str, dims: &[i64], data: &[f32]) -> Result<String, Error> {
        let raw = data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
        self.initializer(name, dims, DataType::FLOAT16, raw)
    }

    /// An int64 constant (shapes, indices, pads).
    pub fn constant_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> Result<String, Error> {
        self.initializer(name, dims, DataType::INT64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A float32 scalar constant.
    pub fn scalar(&mut self, name: &str, v: f32) -> Result<String, Error> {
        self.constant(name, &[], &[v])
    }

    /// Appends node `name` of type `op` over `inputs` (`""` skips an optional input);
    /// its output is the tensor `name`.
    pub fn wire(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> Result<String, Error> {
        self.wire_outputs(name, op, inputs, &[name.to_string()], attributes)?;
        Ok(name.into())
    }

    /// Appends node `name` of type `op` whose outputs are the tensors `outputs` (Split).
    pub fn wire_outputs(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[String],
        attributes: Vec<AttributeProto>,
    ) -> Result<(), Error> {
        if let Some(missing) = inputs.iter().find(|i| !i.is_empty() && !self.names.contains(**i)) {
            return Err(Error::Graph {
                node: name.into(),
                op: op.into(),
                reason: format!("input {missing} is not defined"),
            });
        }
        for o in outputs {
            self.claim(o, op)?;
        }
        self.graph.node.push(NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            attribute: attributes,
            ..Default::default()
        });
        Ok(())
    }

    /// The model around the graph.
    pub fn finish(self) -> ModelProto {
        ModelProto {
            ir_version: 8,
            producer_name: "nst-features".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET, ..Default::default() }],
            graph: Some(self.graph).into(),
            ..Default::default()
        }
    }
}

fn value_info(name: &str, dims: &[Dim<'_>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match *d {
                Dim::Fixed(v) => dimension::Value::DimValue(v),
                Dim::Named(s) => dimension::Value::DimParam(s.into()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = TensorType {
        elem_type: DataType::FLOAT as i32,
        shape: Some(TensorShapeProto { dim, ..Default::default() }).into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }).into(),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INTS.into(), ints: v.to_vec(), ..Default::default() }
}

/// An integer attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INT.into(), i: v, ..Default::default() }
}

/// A string attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_and_undefined_inputs() {
        let mut b = GraphBuilder::new("t");
        b.input("x", &[Dim::Fixed(1)]).unwrap();
        b.wire("y", "Relu", &["x"], vec![]).unwrap();
        let dup = b.wire("y", "Relu", &["x"], vec![]).unwrap_err();
        assert_eq!(dup.to_string(), "graph node y (Relu): name already defined");
        let missing = b.wire("z", "Add", &["x", "w"], vec![]).unwrap_err();
        assert_eq!(missing.to_string(), "graph node z (Add): input w is not defined");
        assert!(b.output("nope", &[]).is_err());
    }
}
