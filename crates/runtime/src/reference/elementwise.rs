//! Reference kernels of the elementwise family.

use slimnet_ir::ops::ElementwiseOp;
use slimnet_tensor::{broadcast_shapes, BroadcastIndexer, Tensor, TensorData};

use super::util::{input, reason};

pub fn run(op: &ElementwiseOp, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let out = match op {
        ElementwiseOp::Relu => map_f32(x, |v| v.max(0.0))?,
        ElementwiseOp::LeakyRelu { alpha } => {
            let a = *alpha;
            map_f32(x, move |v| if v < 0.0 { a * v } else { v })?
        }
        ElementwiseOp::Add => {
            let b = input(inputs, 1)?;
            let shape = broadcast_shapes(x.shape(), b.shape()).map_err(reason)?;
            let (TensorData::F32(p), TensorData::F32(q)) = (x.data(), b.data()) else {
                return Err(format!("unsupported dtypes {} and {}", x.dtype(), b.dtype()));
            };
            let ia = BroadcastIndexer::new(x.shape(), &shape);
            let ib = BroadcastIndexer::new(b.shape(), &shape);
            let v: Vec<f32> = ia.indices().zip(ib.indices()).map(|(i, j)| p[i] + q[j]).collect();
            Tensor::from_vec(shape, v).map_err(reason)?
        }
    };
    Ok(vec![out])
}

fn map_f32(x: &Tensor, f: impl Fn(f32) -> f32) -> Result<Tensor, String> {
    let v = x.as_slice::<f32>().map_err(reason)?;
    Tensor::from_vec(x.shape().to_vec(), v.iter().map(|&a| f(a)).collect()).map_err(reason)
}
