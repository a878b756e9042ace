//! Pad: constant, reflect, edge and wrap, for any dtype.

use slimnet_ir::ops::nn::{Pad, PadMode};
use slimnet_tensor::{strides_of, DType, Element, Tensor, TensorData};

use super::float::count;
use crate::reference::util::{input, optional};

pub fn run_pad(op: &Pad, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let (pads, value, axes) = if op.pads.is_some() {
        (None, None, None)
    } else {
        let p = input(inputs, 1)?;
        if p.dtype() != DType::I64 {
            return Err(format!("pads must be int64, got {}", p.dtype()));
        }
        let value = optional(inputs, 2);
        if let Some(v) = value {
            if v.len() != 1 {
                return Err(format!(
                    "constant_value must hold one element, got shape {:?}",
                    v.shape()
                ));
            }
            if v.dtype() != x.dtype() {
                return Err(format!(
                    "constant_value has dtype {}, data has {}",
                    v.dtype(),
                    x.dtype()
                ));
            }
        }
        let axes = match optional(inputs, 3) {
            None => None,
            Some(a) => Some(a.to_i64_vec().map_err(|e| e.to_string())?),
        };
        (
            Some(p.to_i64_vec().map_err(|e| e.to_string())?),
            value,
            axes,
        )
    };
    let per_axis = op.resolve_pads(x.rank(), pads.as_deref(), axes.as_deref())?;
    let shape = x.shape();
    let mut out_shape = Vec::with_capacity(shape.len());
    let mut maps: Vec<Vec<Option<usize>>> = Vec::with_capacity(shape.len());
    for (&n, &(b, e)) in shape.iter().zip(&per_axis) {
        // Negative pads crop first; the positive ones then pad the cropped extent
        // (as ONNX Runtime does, which matters for reflect and wrap).
        let n = n as i64;
        let (lo, hi) = (b.min(0).checked_neg(), n.checked_add(e.min(0)));
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Err(format!("pads ({b}, {e}) are out of range"));
        };
        if hi < lo {
            return Err(format!("pads ({b}, {e}) crop more than the extent {n}"));
        }
        let kept = hi - lo;
        let (b, e) = (b.max(0), e.max(0));
        let len = kept
            .checked_add(b)
            .and_then(|v| v.checked_add(e))
            .ok_or("pads are out of range")?;
        count(&[len as usize])?;
        if kept == 0 && len > 0 && op.mode != PadMode::Constant {
            return Err(format!("cannot {} pad an empty axis", op.mode.as_str()));
        }
        let map = (0..len)
            .map(|o| {
                let i = o - b;
                let j = match op.mode {
                    _ if (0..kept).contains(&i) => i,
                    PadMode::Constant => return None,
                    PadMode::Edge => i.clamp(0, kept - 1),
                    PadMode::Wrap => i.rem_euclid(kept),
                    PadMode::Reflect if kept == 1 => 0,
                    PadMode::Reflect => {
                        let period = 2 * (kept - 1);
                        let m = i.rem_euclid(period);
                        if m >= kept {
                            period - m
                        } else {
                            m
                        }
                    }
                };
                Some((lo + j) as usize)
            })
            .collect();
        out_shape.push(len as usize);
        maps.push(map);
    }
    let total = count(&out_shape)?;
    let strides = strides_of(shape);
    let mut src: Vec<Option<usize>> = Vec::with_capacity(total);
    if total > 0 {
        let rank = out_shape.len();
        let mut idx = vec![0usize; rank];
        for _ in 0..total {
            let mut off = Some(0usize);
            for a in 0..rank {
                off = match (off, maps[a][idx[a]]) {
                    (Some(o), Some(i)) => Some(o + i * strides[a]),
                    _ => None,
                };
            }
            src.push(off);
            for a in (0..rank).rev() {
                idx[a] += 1;
                if idx[a] < out_shape[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    }
    let data = fill(x.data(), &src, value, op.value)?;
    Tensor::new(out_shape, data)
        .map(|t| vec![t])
        .map_err(|e| e.to_string())
}

fn fill(
    data: &TensorData,
    src: &[Option<usize>],
    value: Option<&Tensor>,
    attr: f32,
) -> Result<TensorData, String> {
    fn typed<T: Element>(
        v: &[T],
        src: &[Option<usize>],
        value: Option<&Tensor>,
        attr: f32,
    ) -> Result<TensorData, String> {
        let c = match value {
            Some(t) => t.as_slice::<T>().map_err(|e| e.to_string())?[0],
            None => T::from_f64(attr as f64),
        };
        Ok(T::wrap(src.iter().map(|s| s.map_or(c, |i| v[i])).collect()))
    }
    match data {
        TensorData::F32(v) => typed(v, src, value, attr),
        TensorData::F64(v) => typed(v, src, value, attr),
        TensorData::F16(v) => typed(v, src, value, attr),
        TensorData::BF16(v) => typed(v, src, value, attr),
        TensorData::I8(v) => typed(v, src, value, attr),
        TensorData::I16(v) => typed(v, src, value, attr),
        TensorData::I32(v) => typed(v, src, value, attr),
        TensorData::I64(v) => typed(v, src, value, attr),
        TensorData::U8(v) => typed(v, src, value, attr),
        TensorData::U16(v) => typed(v, src, value, attr),
        TensorData::U32(v) => typed(v, src, value, attr),
        TensorData::U64(v) => typed(v, src, value, attr),
        TensorData::Bool(v) => typed(v, src, value, attr),
        TensorData::I4(_) | TensorData::U4(_) => Err("Pad does not take 4-bit tensors".into()),
        TensorData::String(v) => {
            let c = match value {
                Some(t) => match t.data() {
                    TensorData::String(s) => s[0].clone(),
                    _ => return Err("constant_value must be a string".into()),
                },
                None => String::new(),
            };
            Ok(TensorData::String(
                src.iter()
                    .map(|s| s.map_or_else(|| c.clone(), |i| v[i].clone()))
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pad(mode: PadMode, pads: Vec<i64>) -> Pad {
        Pad {
            mode,
            pads: Some(pads),
            value: 9.0,
            opset: 2,
        }
    }

    #[test]
    fn modes_along_one_axis() {
        let x = Tensor::from_vec(vec![1, 3], vec![1i64, 2, 3]).unwrap();
        let run = |m| {
            run_pad(&pad(m, vec![0, 4, 0, 2]), &[Some(&x)])
                .unwrap()
                .remove(0)
        };
        assert_eq!(
            run(PadMode::Constant).as_slice::<i64>().unwrap(),
            &[9, 9, 9, 9, 1, 2, 3, 9, 9]
        );
        assert_eq!(
            run(PadMode::Edge).as_slice::<i64>().unwrap(),
            &[1, 1, 1, 1, 1, 2, 3, 3, 3]
        );
        assert_eq!(
            run(PadMode::Reflect).as_slice::<i64>().unwrap(),
            &[1, 2, 3, 2, 1, 2, 3, 2, 1]
        );
        assert_eq!(
            run(PadMode::Wrap).as_slice::<i64>().unwrap(),
            &[3, 1, 2, 3, 1, 2, 3, 1, 2]
        );
        let crop = run_pad(&pad(PadMode::Constant, vec![0, -1, 0, 0]), &[Some(&x)]).unwrap();
        assert_eq!(crop[0].as_slice::<i64>().unwrap(), &[2, 3]);
        assert!(run_pad(&pad(PadMode::Constant, vec![0, -5, 0, 0]), &[Some(&x)]).is_err());
        assert!(run_pad(&pad(PadMode::Constant, vec![1, 1]), &[Some(&x)]).is_err());
    }
}
