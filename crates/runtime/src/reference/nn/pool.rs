//! MaxPool (with Indices), AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool.

use slimnet_ir::ops::nn::Window;
use slimnet_tensor::{DType, Tensor};

use super::conv::Geo3;
use super::float::{count, floats, to_tensor, with_float, Float};
use crate::reference::util::input;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Max { column_major: bool },
    Average { count_include_pad: bool },
    Lp { p: i64 },
}

/// Checks the input of a pool: rank 3 or more; returns (N*C planes, spatial dims).
fn planes(x: &Tensor) -> Result<(usize, Vec<usize>), String> {
    let s = x.shape();
    if s.len() < 3 {
        return Err(format!(
            "input must have rank 3 or more (N, C, spatial...), got shape {s:?}"
        ));
    }
    Ok((s[0] * s[1], s[2..].to_vec()))
}

pub fn run_max_pool(
    window: &Window,
    storage_order: i64,
    inputs: &[Option<&Tensor>],
    outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let kind = Kind::Max {
        column_major: storage_order == 1,
    };
    match x.dtype() {
        d if d.is_float() => with_float!(d, "X", pool_typed(window, kind, x, outputs)),
        DType::I8 | DType::U8 | DType::I32 | DType::I64 | DType::I16 | DType::U16 => {
            // Integers convert exactly through f64; the results convert back.
            let xf = x.cast(DType::F64).map_err(|e| e.to_string())?;
            let mut out = pool_typed::<f64>(window, kind, &xf, outputs)?;
            out[0] = out[0].cast(x.dtype()).map_err(|e| e.to_string())?;
            Ok(out)
        }
        d => Err(format!("MaxPool does not support dtype {d}")),
    }
}

pub fn run_average_pool(
    window: &Window,
    count_include_pad: bool,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    with_float!(
        x.dtype(),
        "X",
        pool_typed(window, Kind::Average { count_include_pad }, x, 1)
    )
}

pub fn run_lp_pool(
    window: &Window,
    p: i64,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    with_float!(x.dtype(), "X", pool_typed(window, Kind::Lp { p }, x, 1))
}

fn pool_typed<T: Float>(
    window: &Window,
    kind: Kind,
    x: &Tensor,
    outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let (nc, spatial) = planes(x)?;
    let kernel: Vec<usize> = window
        .kernel_shape
        .iter()
        .map(|&k| usize::try_from(k).map_err(|_| format!("kernel extent {k} is negative")))
        .collect::<Result<_, _>>()?;
    let r = window.resolve(&spatial, &kernel)?;
    let g = Geo3::new(&spatial, &r)?;
    let ends = {
        let mut e = [0i64; 3];
        e[3 - spatial.len()..].copy_from_slice(&r.pads_end);
        e
    };
    let xv = floats::<T>(x, "X")?;
    let in_sp = count(&spatial)?;
    let mut shape = x.shape()[..2].to_vec();
    shape.extend(&r.output);
    let total = count(&shape)?;
    let mut out = vec![T::ZERO; total];
    let want_indices = outputs > 1 && matches!(kind, Kind::Max { .. });
    let mut indices = if want_indices {
        vec![0i64; total]
    } else {
        Vec::new()
    };
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [kd, kh, kw] = g.kernel;
    let limit = |ax: usize| g.input[ax] as i64 + ends[ax];
    let p = match kind {
        Kind::Lp { p } => T::from_f64(p as f64),
        _ => T::ONE,
    };
    for plane in 0..nc {
        let xp = &xv[plane * in_sp..(plane + 1) * in_sp];
        for oz in 0..od {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = ((plane * od + oz) * oh + oy) * ow + ox;
                    let mut best: Option<(T, usize)> = None;
                    let (mut sum, mut n_valid, mut n_padded) = (0f64, 0usize, 0usize);
                    for a in 0..kd {
                        let z = g.src(0, oz, a);
                        if z >= limit(0) {
                            continue;
                        }
                        for b in 0..kh {
                            let y = g.src(1, oy, b);
                            if y >= limit(1) {
                                continue;
                            }
                            for e in 0..kw {
                                let xx = g.src(2, ox, e);
                                if xx >= limit(2) {
                                    continue;
                                }
                                n_padded += 1;
                                if z < 0
                                    || y < 0
                                    || xx < 0
                                    || z >= id as i64
                                    || y >= ih as i64
                                    || xx >= iw as i64
                                {
                                    continue;
                                }
                                let (z, y, xx) = (z as usize, y as usize, xx as usize);
                                let v = xp[(z * ih + y) * iw + xx];
                                n_valid += 1;
                                match kind {
                                    Kind::Max { column_major } => {
                                        if best.is_none_or(|(m, _)| v > m) {
                                            let idx = if column_major {
                                                (xx * ih + y) * id + z
                                            } else {
                                                (z * ih + y) * iw + xx
                                            };
                                            best = Some((v, idx));
                                        }
                                    }
                                    Kind::Average { .. } => sum += v.to_f64(),
                                    Kind::Lp { .. } => sum += v.abs().powf(p).to_f64(),
                                }
                            }
                        }
                    }
                    out[o] = match kind {
                        Kind::Max { .. } => match best {
                            Some((v, idx)) => {
                                if want_indices {
                                    indices[o] = (plane * in_sp + idx) as i64;
                                }
                                v
                            }
                            None => T::from_f64(f64::NEG_INFINITY),
                        },
                        Kind::Average { count_include_pad } => {
                            let n = if count_include_pad { n_padded } else { n_valid };
                            if n == 0 {
                                T::ZERO
                            } else {
                                T::from_f64(sum / n as f64)
                            }
                        }
                        Kind::Lp { p } => T::from_f64(sum.powf(1.0 / p as f64)),
                    };
                }
            }
        }
    }
    let mut result = vec![to_tensor(shape.clone(), out, x.dtype())?];
    if want_indices {
        result.push(Tensor::from_vec(shape, indices).map_err(|e| e.to_string())?);
    }
    Ok(result)
}

/// GlobalAveragePool (`max` false) and GlobalMaxPool.
pub fn run_global_pool(max: bool, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    with_float!(x.dtype(), "X", global_typed(max, x))
}

fn global_typed<T: Float>(max: bool, x: &Tensor) -> Result<Vec<Tensor>, String> {
    let (nc, spatial) = planes(x)?;
    let in_sp = count(&spatial)?;
    let xv = floats::<T>(x, "X")?;
    let mut out = Vec::with_capacity(nc);
    for plane in 0..nc {
        let xp = &xv[plane * in_sp..(plane + 1) * in_sp];
        out.push(if max {
            xp.iter()
                .copied()
                .fold(T::from_f64(f64::NEG_INFINITY), |m, v| {
                    if v > m || v.is_nan() {
                        v
                    } else {
                        m
                    }
                })
        } else {
            T::from_f64(xp.iter().map(|v| v.to_f64()).sum::<f64>() / in_sp as f64)
        });
    }
    let mut shape = x.shape()[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, spatial.len()));
    Ok(vec![to_tensor(shape, out, x.dtype())?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_ir::ops::nn::AutoPad;

    fn win(k: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, ceil_mode: bool) -> Window {
        Window {
            auto_pad: AutoPad::NotSet,
            kernel_shape: k,
            strides,
            dilations: vec![],
            pads,
            ceil_mode,
        }
    }

    #[test]
    fn max_pool_with_indices_and_ceil_mode() {
        let x = Tensor::from_vec(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
        let out = run_max_pool(
            &win(vec![2, 2], vec![2, 2], vec![], true),
            0,
            &[Some(&x)],
            2,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 2, 2]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[5.0, 6.0, 8.0, 9.0]);
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[4, 5, 7, 8]);
        let cm = run_max_pool(
            &win(vec![2, 2], vec![2, 2], vec![], true),
            1,
            &[Some(&x)],
            2,
        )
        .unwrap();
        assert_eq!(cm[1].as_slice::<i64>().unwrap(), &[4, 7, 5, 8]);
    }

    #[test]
    fn average_pool_counts_padding_only_when_asked() {
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![1f32, 2.0, 3.0, 4.0]).unwrap();
        let w = win(vec![2, 2], vec![], vec![1, 1, 0, 0], false);
        let a = run_average_pool(&w, false, &[Some(&x)]).unwrap();
        assert_eq!(a[0].as_slice::<f32>().unwrap(), &[1.0, 1.5, 2.0, 2.5]);
        let b = run_average_pool(&w, true, &[Some(&x)]).unwrap();
        assert_eq!(b[0].as_slice::<f32>().unwrap(), &[0.25, 0.75, 1.0, 2.5]);
    }

    #[test]
    fn kernel_larger_than_input_is_an_error() {
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![1f32, 2.0, 3.0, 4.0]).unwrap();
        assert!(run_max_pool(&win(vec![3, 3], vec![], vec![], false), 0, &[Some(&x)], 1).is_err());
        let flat = Tensor::from_vec(vec![4], vec![1f32, 2.0, 3.0, 4.0]).unwrap();
        assert!(run_global_pool(true, &[Some(&flat)]).is_err());
    }
}
