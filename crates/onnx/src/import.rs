//! ModelProto -> IR.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use prost::Message;
use slimnet_ir::{
    Attr, Attributes, Dim, Graph, IrError, Model, Node, NodeContext, Op, Value, ValueInfo,
};
use slimnet_tensor::{DType, Tensor};

use crate::error::ImportError;
use crate::proto::{
    self, attribute_type as at, type_proto, GraphProto, ModelProto, NodeProto, TypeProto,
};
use crate::tensor_proto::{onnx_type_name, tensor_from_proto, DataDir};
use crate::OnnxError;

/// Oldest IR version slimnet reads.
pub const MIN_IR_VERSION: i64 = 3;
/// Oldest default-domain operator set slimnet reads.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain operator set slimnet reads.
pub const MAX_OPSET: i64 = 28;

/// Reads an ONNX model file. External data is resolved inside the file's folder only.
pub fn load_model(path: impl AsRef<Path>) -> Result<Model, OnnxError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| OnnxError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    decode_model_named(&bytes, dir, &shown)
}

/// Decodes an ONNX model from bytes. `dir` is the folder external data may come from.
pub fn decode_model(bytes: &[u8], dir: Option<&Path>) -> Result<Model, OnnxError> {
    decode_model_named(bytes, dir, "<model bytes>")
}

/// Reads a serialized `TensorProto` file (as the ONNX test data sets store them).
pub fn read_tensor_file(path: impl AsRef<Path>) -> Result<Tensor, OnnxError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| OnnxError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let p = proto::TensorProto::decode(bytes.as_slice()).map_err(|e| OnnxError::NotOnnx {
        path: shown.clone(),
        reason: format!("not a TensorProto ({e})"),
    })?;
    tensor_from_proto(&p, DataDir(path.parent())).map_err(|reason| OnnxError::Tensor {
        path: shown,
        tensor: p.name.clone(),
        reason,
    })
}

fn decode_model_named(bytes: &[u8], dir: Option<&Path>, shown: &str) -> Result<Model, OnnxError> {
    let not_onnx = |reason: String| OnnxError::NotOnnx {
        path: shown.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(not_onnx("the file is empty".into()));
    }
    let mp = ModelProto::decode(bytes)
        .map_err(|e| not_onnx(format!("protobuf decoding failed ({e})")))?;
    if mp.ir_version == 0 {
        return Err(not_onnx(
            "ir_version is missing (is this another kind of protobuf file?)".into(),
        ));
    }
    let Some(gp) = &mp.graph else {
        return Err(not_onnx("the model has no graph".into()));
    };
    let unsupported = |reason: String| OnnxError::Unsupported {
        path: shown.to_string(),
        reason,
    };
    if mp.ir_version < MIN_IR_VERSION {
        return Err(unsupported(format!(
            "IR version {} is older than {MIN_IR_VERSION}",
            mp.ir_version
        )));
    }
    let opsets: HashMap<String, i64> = mp
        .opset_import
        .iter()
        .map(|o| {
            (
                if o.domain == "ai.onnx" {
                    String::new()
                } else {
                    o.domain.clone()
                },
                o.version,
            )
        })
        .collect();
    let default_opset = opsets.get("").copied().unwrap_or(1);
    if !(MIN_OPSET..=MAX_OPSET).contains(&default_opset) {
        return Err(unsupported(format!(
            "default-domain opset {default_opset} is outside the supported range {MIN_OPSET}..={MAX_OPSET}"
        )));
    }
    let importer = Importer {
        dir: DataDir(dir),
        opsets: &opsets,
    };
    let graph = importer.graph(gp, None).map_err(|e| e.in_file(shown))?;
    Ok(Model {
        graph,
        ir_version: mp.ir_version,
        opsets: mp
            .opset_import
            .iter()
            .map(|o| (o.domain.clone(), o.version))
            .collect(),
        producer_name: mp.producer_name,
        producer_version: mp.producer_version,
        domain: mp.domain,
        model_version: mp.model_version,
        doc_string: mp.doc_string,
        metadata: mp
            .metadata_props
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect(),
    })
}

struct Importer<'a> {
    dir: DataDir<'a>,
    opsets: &'a HashMap<String, i64>,
}

/// Names visible from enclosing graphs (a subgraph may read them).
type OuterNames<'a> = Option<&'a dyn Fn(&str) -> bool>;

impl Importer<'_> {
    fn graph(&self, gp: &GraphProto, outer: OuterNames) -> Result<Graph, ImportError> {
        let mut g = Graph {
            name: gp.name.clone(),
            ..Default::default()
        };
        let mut names: HashMap<String, usize> = HashMap::new();
        if let Some(s) = gp.sparse_initializer.first() {
            let name = s
                .values
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            return Err(ImportError::Tensor {
                tensor: name,
                reason: "sparse initializers are not supported".into(),
            });
        }
        for init in &gp.initializer {
            let t = tensor_from_proto(init, self.dir).map_err(|reason| ImportError::Tensor {
                tensor: init.name.clone(),
                reason,
            })?;
            let mut v = Value::new(init.name.clone());
            v.info = ValueInfo::of_tensor(&t);
            v.constant = Some(Arc::new(t));
            let id = g.add_value(v);
            names.insert(init.name.clone(), id);
        }
        for vi in &gp.input {
            if names.contains_key(&vi.name) {
                continue; // an initializer listed as input (IR < 4): a constant
            }
            let info = value_info(vi.r#type.as_ref()).map_err(|reason| {
                ImportError::Unsupported(format!("graph input '{}': {reason}", vi.name))
            })?;
            let mut v = Value::new(vi.name.clone());
            v.info = info;
            let id = g.add_value(v);
            names.insert(vi.name.clone(), id);
            g.inputs.push(id);
        }
        // Outputs first, so nodes may be listed in any order.
        for np in &gp.node {
            for out in np.output.iter().filter(|o| !o.is_empty()) {
                if names.contains_key(out) {
                    return Err(IrError::Graph(format!("value '{out}' is defined twice")).into());
                }
                let id = g.add_value(Value::new(out.clone()));
                names.insert(out.clone(), id);
            }
        }
        let mut resolve = |g: &mut Graph, name: &str, reader: &str| -> Result<usize, ImportError> {
            if let Some(&id) = names.get(name) {
                return Ok(id);
            }
            if outer.is_some_and(|f| f(name)) {
                let mut v = Value::new(name);
                v.outer = true;
                let id = g.add_value(v);
                names.insert(name.to_string(), id);
                return Ok(id);
            }
            Err(IrError::Graph(format!(
                "{reader} reads '{name}', which no node, input or initializer defines"
            ))
            .into())
        };
        let known_here: Vec<String> = gp
            .input
            .iter()
            .map(|v| v.name.clone())
            .chain(gp.initializer.iter().map(|t| t.name.clone()))
            .chain(gp.node.iter().flat_map(|n| n.output.iter().cloned()))
            .collect();
        let visible =
            |name: &str| known_here.iter().any(|n| n == name) || outer.is_some_and(|f| f(name));
        for np in &gp.node {
            let display = node_display(np);
            if np.op_type == "Constant" && (np.domain.is_empty() || np.domain == "ai.onnx") {
                let t = constant_value(np).map_err(|reason| ImportError::Tensor {
                    tensor: display.clone(),
                    reason,
                })?;
                let out = np.output.first().filter(|o| !o.is_empty()).ok_or_else(|| {
                    ImportError::Graph(IrError::Graph(format!(
                        "Constant node '{display}' has no output"
                    )))
                })?;
                let id = resolve(&mut g, out, "a Constant node")?;
                g.values[id].info = ValueInfo::of_tensor(&t);
                g.values[id].constant = Some(Arc::new(t));
                continue;
            }
            let node = self.node(&mut g, np, &display, &visible, &mut resolve)?;
            g.nodes.push(node);
        }
        for vi in &gp.output {
            let id = resolve(&mut g, &vi.name, "the graph output list")?;
            let declared = value_info(vi.r#type.as_ref()).unwrap_or_default();
            if g.values[id].constant.is_none() {
                g.values[id].info = declared;
            }
            g.outputs.push(id);
        }
        let names: HashMap<String, usize> = g
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), i))
            .collect();
        for vi in &gp.value_info {
            if let Some(&id) = names.get(&vi.name) {
                if g.values[id].constant.is_none() {
                    if let Ok(info) = value_info(vi.r#type.as_ref()) {
                        g.values[id].info = info;
                    }
                }
            }
        }
        g.sort()?;
        Ok(g)
    }

    fn node(
        &self,
        g: &mut Graph,
        np: &NodeProto,
        display: &str,
        visible: &dyn Fn(&str) -> bool,
        resolve: &mut dyn FnMut(&mut Graph, &str, &str) -> Result<usize, ImportError>,
    ) -> Result<Node, ImportError> {
        let domain = if np.domain == "ai.onnx" {
            ""
        } else {
            np.domain.as_str()
        };
        let opset = self.opsets.get(domain).copied().unwrap_or(1);
        let mut entries = Vec::with_capacity(np.attribute.len());
        for a in &np.attribute {
            let attr = self.attribute(a, visible).map_err(|e| match e {
                ImportError::Unsupported(reason) => ImportError::Graph(IrError::Attribute {
                    node: display.to_string(),
                    op_type: np.op_type.clone(),
                    error: slimnet_ir::AttrError::new(a.name.clone(), reason),
                }),
                other => other,
            })?;
            entries.push((a.name.clone(), attr));
        }
        let mut attrs = Attributes::new(entries);
        let ctx = NodeContext {
            name: display,
            op_type: &np.op_type,
            domain,
            opset,
            num_inputs: np.input.len(),
            num_outputs: np.output.len(),
        };
        let op = Op::parse(&ctx, &mut attrs)?;
        let reader = format!("node '{display}'");
        let mut inputs = Vec::with_capacity(np.input.len());
        for name in &np.input {
            inputs.push(if name.is_empty() {
                None
            } else {
                Some(resolve(g, name, &reader)?)
            });
        }
        let outputs = np
            .output
            .iter()
            .map(|o| {
                if o.is_empty() {
                    Ok(None)
                } else {
                    resolve(g, o, &reader).map(Some)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Node {
            name: np.name.clone(),
            op,
            inputs,
            outputs,
        })
    }

    fn attribute(
        &self,
        a: &proto::AttributeProto,
        visible: &dyn Fn(&str) -> bool,
    ) -> Result<Attr, ImportError> {
        if !a.ref_attr_name.is_empty() {
            return Err(ImportError::Unsupported(
                "references to function attributes are not supported".into(),
            ));
        }
        let tensor = |t: &proto::TensorProto| {
            tensor_from_proto(t, self.dir).map_err(|reason| ImportError::Tensor {
                tensor: a.name.clone(),
                reason,
            })
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let kind = if a.r#type != 0 {
            a.r#type
        } else {
            infer_attr_type(a)
        };
        Ok(match kind {
            at::FLOAT => Attr::Float(a.f),
            at::INT => Attr::Int(a.i),
            at::STRING => Attr::String(text(&a.s)),
            at::TENSOR => Attr::Tensor(tensor(a.t.as_ref().ok_or_else(|| {
                ImportError::Unsupported("tensor attribute has no tensor".into())
            })?)?),
            at::GRAPH => {
                let gp = a.g.as_ref().ok_or_else(|| {
                    ImportError::Unsupported("graph attribute has no graph".into())
                })?;
                Attr::Graph(Box::new(self.graph(gp, Some(visible))?))
            }
            at::FLOATS => Attr::Floats(a.floats.clone()),
            at::INTS => Attr::Ints(a.ints.clone()),
            at::STRINGS => Attr::Strings(a.strings.iter().map(|s| text(s)).collect()),
            at::TENSORS => Attr::Tensors(a.tensors.iter().map(tensor).collect::<Result<_, _>>()?),
            at::GRAPHS => Attr::Graphs(
                a.graphs
                    .iter()
                    .map(|gp| self.graph(gp, Some(visible)))
                    .collect::<Result<_, _>>()?,
            ),
            at::SPARSE_TENSOR | at::SPARSE_TENSORS => {
                return Err(ImportError::Unsupported(
                    "sparse tensor attributes are not supported".into(),
                ))
            }
            at::TYPE_PROTO | at::TYPE_PROTOS => {
                return Err(ImportError::Unsupported(
                    "type attributes are not supported".into(),
                ))
            }
            other => {
                return Err(ImportError::Unsupported(format!(
                    "unknown attribute type {other}"
                )))
            }
        })
    }
}

/// Attribute type for old files that leave `type` unset.
fn infer_attr_type(a: &proto::AttributeProto) -> i32 {
    if a.t.is_some() {
        at::TENSOR
    } else if a.g.is_some() {
        at::GRAPH
    } else if !a.floats.is_empty() {
        at::FLOATS
    } else if !a.ints.is_empty() {
        at::INTS
    } else if !a.strings.is_empty() {
        at::STRINGS
    } else if !a.s.is_empty() {
        at::STRING
    } else if a.f != 0.0 {
        at::FLOAT
    } else {
        at::INT
    }
}

fn node_display(np: &NodeProto) -> String {
    if !np.name.is_empty() {
        np.name.clone()
    } else if let Some(o) = np.output.iter().find(|o| !o.is_empty()) {
        format!("{} -> {o}", np.op_type)
    } else {
        np.op_type.clone()
    }
}

/// The tensor a `Constant` node defines (any of its value attributes).
fn constant_value(np: &NodeProto) -> Result<Tensor, String> {
    let a = np
        .attribute
        .first()
        .ok_or("Constant node has no value attribute")?;
    if np.attribute.len() != 1 {
        return Err("Constant node must have exactly one value attribute".into());
    }
    let bad = |e: slimnet_tensor::TensorError| e.to_string();
    match a.name.as_str() {
        "value" => tensor_from_proto(
            a.t.as_ref().ok_or("'value' holds no tensor")?,
            DataDir(None),
        ),
        "value_float" => Ok(Tensor::scalar(a.f)),
        "value_int" => Ok(Tensor::scalar(a.i)),
        "value_floats" => Tensor::from_vec(vec![a.floats.len()], a.floats.clone()).map_err(bad),
        "value_ints" => Tensor::from_vec(vec![a.ints.len()], a.ints.clone()).map_err(bad),
        "value_string" => Tensor::new(
            vec![],
            slimnet_tensor::TensorData::String(vec![String::from_utf8_lossy(&a.s).into()]),
        )
        .map_err(bad),
        "value_strings" => Tensor::new(
            vec![a.strings.len()],
            slimnet_tensor::TensorData::String(
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into())
                    .collect(),
            ),
        )
        .map_err(bad),
        "sparse_value" => Err("sparse constants are not supported".into()),
        other => Err(format!("unknown Constant attribute '{other}'")),
    }
}

/// Declared dtype and shape of a value; non-tensor types are unsupported.
fn value_info(tp: Option<&TypeProto>) -> Result<ValueInfo, String> {
    let Some(tp) = tp else {
        return Ok(ValueInfo::default());
    };
    match &tp.value {
        None => Ok(ValueInfo::default()),
        Some(type_proto::Value::TensorType(t)) => {
            let dtype = match t.elem_type {
                0 => None,
                c => Some(DType::from_onnx_code(c).ok_or_else(|| {
                    format!("element type {c} ({}) is not supported", onnx_type_name(c))
                })?),
            };
            let shape = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(proto::tensor_shape_proto::dimension::Value::DimValue(v))
                            if *v >= 0 =>
                        {
                            Dim::Known(*v as usize)
                        }
                        // Some exporters write "?" or "-1" for an unknown dim: not a shared symbol.
                        Some(proto::tensor_shape_proto::dimension::Value::DimParam(p))
                            if !p.is_empty() && p != "?" && p != "-1" =>
                        {
                            Dim::Symbol(p.clone())
                        }
                        _ => Dim::Unknown,
                    })
                    .collect()
            });
            Ok(ValueInfo { dtype, shape })
        }
        Some(type_proto::Value::SequenceType(_)) => Err("sequence types are not supported".into()),
        Some(type_proto::Value::MapType(_)) => Err("map types are not supported".into()),
        Some(type_proto::Value::OptionalType(_)) => Err("optional types are not supported".into()),
        Some(type_proto::Value::SparseTensorType(_)) => {
            Err("sparse tensor types are not supported".into())
        }
    }
}
