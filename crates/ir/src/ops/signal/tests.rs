use slimnet_tensor::Tensor;

use super::*;

fn ctx(op_type: &'static str, opset: i64) -> NodeContext<'static> {
    NodeContext {
        name: "n",
        op_type,
        domain: "",
        opset,
        num_inputs: 1,
        num_outputs: 1,
    }
}

fn known(s: &[usize]) -> Vec<Dim> {
    s.iter().map(|&d| Dim::Known(d)).collect()
}

fn parse(op_type: &'static str, opset: i64, attrs: Vec<(&str, Attr)>) -> SignalOp {
    let attrs = Attributes::new(attrs.into_iter().map(|(n, a)| (n.to_string(), a)).collect());
    SignalOp::parse(&ctx(op_type, opset), &attrs)
        .unwrap()
        .unwrap()
}

#[test]
fn parse_fills_opset_defaults() {
    assert_eq!(
        parse("DFT", 17, vec![]),
        SignalOp::Dft {
            axis: Some(1),
            inverse: false,
            onesided: false
        }
    );
    assert_eq!(
        parse("DFT", 20, vec![("inverse", Attr::Int(1))]),
        SignalOp::Dft {
            axis: None,
            inverse: true,
            onesided: false
        }
    );
    assert_eq!(parse("STFT", 17, vec![]), SignalOp::Stft { onesided: true });
    assert_eq!(
        parse(
            "HammingWindow",
            17,
            vec![("output_datatype", Attr::Int(11))]
        ),
        SignalOp::Window {
            kind: WindowKind::Hamming,
            periodic: true,
            output_datatype: DType::F64
        }
    );
    let none = Attributes::default();
    assert!(SignalOp::parse(&ctx("Conv", 17), &none).is_none());
    let bad = Attributes::new(vec![("output_datatype".into(), Attr::Int(9))]);
    assert!(SignalOp::parse(&ctx("HannWindow", 17), &bad)
        .unwrap()
        .is_err());
}

#[test]
fn attributes_round_trip() {
    for (op_type, opset, attrs) in [
        (
            "DFT",
            17,
            vec![("axis", Attr::Int(2)), ("onesided", Attr::Int(1))],
        ),
        ("DFT", 20, vec![("inverse", Attr::Int(1))]),
        ("STFT", 17, vec![("onesided", Attr::Int(0))]),
        ("BlackmanWindow", 17, vec![("periodic", Attr::Int(0))]),
        (
            "MelWeightMatrix",
            17,
            vec![("output_datatype", Attr::Int(10))],
        ),
    ] {
        let op = parse(op_type, opset, attrs);
        let back = Attributes::new(op.attributes());
        assert_eq!(
            SignalOp::parse(&ctx(op_type, opset), &back)
                .unwrap()
                .unwrap(),
            op
        );
    }
}

#[test]
fn infer_dft_shapes() {
    let x = ValueInfo::new(DType::F32, known(&[1, 10, 10, 1]));
    let xi = InferInput {
        info: &x,
        value: None,
    };
    let op = parse("DFT", 17, vec![("onesided", Attr::Int(1))]);
    let out = op.infer(&[Some(xi)]).unwrap();
    assert_eq!(out[0], ValueInfo::new(DType::F32, known(&[1, 6, 10, 2])));

    let axis_t = Tensor::scalar(2i64);
    let axis_info = ValueInfo::of_tensor(&axis_t);
    let len_t = Tensor::scalar(16i64);
    let len_info = ValueInfo::of_tensor(&len_t);
    let op = parse("DFT", 20, vec![]);
    let out = op
        .infer(&[
            Some(xi),
            Some(InferInput {
                info: &len_info,
                value: Some(&len_t),
            }),
            Some(InferInput {
                info: &axis_info,
                value: Some(&axis_t),
            }),
        ])
        .unwrap();
    assert_eq!(out[0], ValueInfo::new(DType::F32, known(&[1, 10, 16, 2])));

    let c = ValueInfo::new(DType::F32, known(&[1, 6, 10, 2]));
    let op = parse(
        "DFT",
        20,
        vec![("inverse", Attr::Int(1)), ("onesided", Attr::Int(1))],
    );
    let ci = InferInput {
        info: &c,
        value: None,
    };
    let out = op
        .infer(&[
            Some(ci),
            None,
            Some(InferInput {
                info: &axis_info,
                value: None,
            }),
        ])
        .unwrap();
    assert_eq!(
        out[0].shape,
        Some(vec![
            Dim::Unknown,
            Dim::Unknown,
            Dim::Unknown,
            Dim::Known(1)
        ])
    );
    let one = Tensor::scalar(1i64);
    let out = op
        .infer(&[
            Some(ci),
            None,
            Some(InferInput {
                info: &axis_info,
                value: Some(&one),
            }),
        ])
        .unwrap();
    assert_eq!(out[0], ValueInfo::new(DType::F32, known(&[1, 10, 10, 1])));

    let bad = ValueInfo::new(DType::F32, known(&[4, 3]));
    assert!(op
        .infer(&[Some(InferInput {
            info: &bad,
            value: None
        })])
        .is_err());
    let axis_bad = parse("DFT", 17, vec![("axis", Attr::Int(-1))]);
    assert!(axis_bad.infer(&[Some(xi)]).is_err());
}

#[test]
fn infer_stft_window_and_mel_shapes() {
    let x = ValueInfo::new(DType::F32, known(&[1, 128, 1]));
    let step = Tensor::scalar(8i64);
    let len = Tensor::scalar(16i64);
    let step_info = ValueInfo::of_tensor(&step);
    let len_info = ValueInfo::of_tensor(&len);
    let op = parse("STFT", 17, vec![]);
    let out = op
        .infer(&[
            Some(InferInput {
                info: &x,
                value: None,
            }),
            Some(InferInput {
                info: &step_info,
                value: Some(&step),
            }),
            None,
            Some(InferInput {
                info: &len_info,
                value: Some(&len),
            }),
        ])
        .unwrap();
    assert_eq!(out[0], ValueInfo::new(DType::F32, known(&[1, 15, 9, 2])));

    let size = Tensor::scalar(10i32);
    let size_info = ValueInfo::of_tensor(&size);
    let op = parse("HannWindow", 17, vec![]);
    let out = op
        .infer(&[Some(InferInput {
            info: &size_info,
            value: Some(&size),
        })])
        .unwrap();
    assert_eq!(out[0], ValueInfo::new(DType::F32, known(&[10])));

    let ints: Vec<Tensor> = [8i32, 16, 8192]
        .iter()
        .map(|&v| Tensor::scalar(v))
        .collect();
    let floats: Vec<Tensor> = [0f32, 4096.].iter().map(|&v| Tensor::scalar(v)).collect();
    let infos: Vec<ValueInfo> = ints
        .iter()
        .chain(&floats)
        .map(ValueInfo::of_tensor)
        .collect();
    let all: Vec<&Tensor> = ints.iter().chain(&floats).collect();
    let inputs: Vec<Option<InferInput>> = infos
        .iter()
        .zip(&all)
        .map(|(info, v)| {
            Some(InferInput {
                info,
                value: Some(*v),
            })
        })
        .collect();
    let op = parse("MelWeightMatrix", 17, vec![]);
    assert_eq!(
        op.infer(&inputs).unwrap()[0],
        ValueInfo::new(DType::F32, known(&[9, 8]))
    );
}
