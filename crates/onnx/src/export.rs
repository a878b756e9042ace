//! IR -> ModelProto.

use std::io::Write;
use std::path::Path;

use prost::Message;
use slimnet_ir::{Attr, Dim, Graph, Model, ValueInfo};

use crate::proto::{
    attribute_type as at, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use crate::tensor_proto::tensor_to_proto;
use crate::OnnxError;

/// Serializes a model as ONNX protobuf bytes. Constants become initializers.
pub fn encode_model(model: &Model) -> Vec<u8> {
    let mp = ModelProto {
        ir_version: model.ir_version,
        opset_import: model
            .opsets
            .iter()
            .map(|(domain, version)| OperatorSetIdProto {
                domain: domain.clone(),
                version: *version,
            })
            .collect(),
        producer_name: model.producer_name.clone(),
        producer_version: model.producer_version.clone(),
        domain: model.domain.clone(),
        model_version: model.model_version,
        doc_string: model.doc_string.clone(),
        graph: Some(graph_proto(&model.graph, model.ir_version < 4)),
        metadata_props: model
            .metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        functions: Vec::new(),
    };
    mp.encode_to_vec()
}

/// Writes a model file atomically: a temporary file in the same folder, then a
/// rename, so a failure never leaves a partial file at `path`.
pub fn save_model(model: &Model, path: impl AsRef<Path>) -> Result<(), OnnxError> {
    let path = path.as_ref();
    let bytes = encode_model(model);
    write_atomically(path, &bytes).map_err(|e| OnnxError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn graph_proto(g: &Graph, initializers_as_inputs: bool) -> GraphProto {
    let mut gp = GraphProto {
        name: g.name.clone(),
        ..Default::default()
    };
    let consumers = g.consumers();
    for (id, v) in g.values.iter().enumerate() {
        if let Some(c) = &v.constant {
            if !consumers[id].is_empty() || g.outputs.contains(&id) {
                gp.initializer.push(tensor_to_proto(&v.name, c));
                if initializers_as_inputs {
                    gp.input.push(value_info_proto(&v.name, &v.info));
                }
            }
        }
    }
    for &i in &g.inputs {
        gp.input
            .push(value_info_proto(&g.values[i].name, &g.values[i].info));
    }
    for &o in &g.outputs {
        gp.output
            .push(value_info_proto(&g.values[o].name, &g.values[o].info));
    }
    let name = |v: &Option<usize>| v.map(|id| g.values[id].name.clone()).unwrap_or_default();
    for node in &g.nodes {
        gp.node.push(NodeProto {
            input: node.inputs.iter().map(name).collect(),
            output: node.outputs.iter().map(name).collect(),
            name: node.name.clone(),
            op_type: node.op.op_type().to_string(),
            domain: node.op.domain().to_string(),
            attribute: node
                .op
                .attributes()
                .into_iter()
                .map(|(n, a)| attribute_proto(n, a))
                .collect(),
            doc_string: String::new(),
        });
    }
    gp
}

fn attribute_proto(name: String, attr: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name,
        ..Default::default()
    };
    match attr {
        Attr::Float(f) => (a.r#type, a.f) = (at::FLOAT, f),
        Attr::Int(i) => (a.r#type, a.i) = (at::INT, i),
        Attr::String(s) => (a.r#type, a.s) = (at::STRING, s.into_bytes()),
        Attr::Tensor(t) => (a.r#type, a.t) = (at::TENSOR, Some(tensor_to_proto("", &t))),
        Attr::Graph(g) => (a.r#type, a.g) = (at::GRAPH, Some(Box::new(graph_proto(&g, false)))),
        Attr::Floats(v) => (a.r#type, a.floats) = (at::FLOATS, v),
        Attr::Ints(v) => (a.r#type, a.ints) = (at::INTS, v),
        Attr::Strings(v) => {
            (a.r#type, a.strings) = (at::STRINGS, v.into_iter().map(String::into_bytes).collect())
        }
        Attr::Tensors(v) => {
            (a.r#type, a.tensors) = (
                at::TENSORS,
                v.iter().map(|t| tensor_to_proto("", t)).collect(),
            )
        }
        Attr::Graphs(v) => {
            (a.r#type, a.graphs) = (
                at::GRAPHS,
                v.iter().map(|g| graph_proto(g, false)).collect(),
            )
        }
    }
    a
}

fn value_info_proto(name: &str, info: &ValueInfo) -> ValueInfoProto {
    let r#type = info.dtype.map(|d| TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: d.onnx_code(),
            shape: info.shape.as_ref().map(|s| TensorShapeProto {
                dim: s
                    .iter()
                    .map(|d| tensor_shape_proto::Dimension {
                        value: match d {
                            Dim::Known(v) => {
                                Some(tensor_shape_proto::dimension::Value::DimValue(*v as i64))
                            }
                            Dim::Symbol(p) => {
                                Some(tensor_shape_proto::dimension::Value::DimParam(p.clone()))
                            }
                            Dim::Unknown => None,
                        },
                        denotation: String::new(),
                    })
                    .collect(),
            }),
        })),
        denotation: String::new(),
    });
    ValueInfoProto {
        name: name.to_string(),
        r#type,
        doc_string: String::new(),
    }
}
