//! Reference kernels of the rnn family: LSTM, GRU and RNN, computed in f64.

use slimnet_ir::ops::rnn::{Activation, Direction, Recurrent};
use slimnet_ir::ops::RnnOp;
use slimnet_tensor::{DType, Tensor};

use super::nn::float::{count, float_dtype, floats, to_tensor};
use super::nn::gemm::{gemm_acc, transpose};
use super::util::{input, optional};

/// Applies a gate activation in f64.
fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Relu => x.max(0.0),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                let e = x.exp();
                e / (1.0 + e)
            }
        }
        Activation::Affine { alpha, beta } => alpha as f64 * x + beta as f64,
        Activation::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x
            } else {
                x
            }
        }
        Activation::ThresholdedRelu { alpha } => {
            if x > alpha as f64 {
                x
            } else {
                0.0
            }
        }
        Activation::ScaledTanh { alpha, beta } => alpha as f64 * (beta as f64 * x).tanh(),
        Activation::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Activation::Elu { alpha } => {
            if x < 0.0 {
                alpha as f64 * (x.exp() - 1.0)
            } else {
                x
            }
        }
        Activation::Softsign => x / (1.0 + x.abs()),
        Activation::Softplus => {
            if x > 30.0 {
                x
            } else {
                x.exp().ln_1p()
            }
        }
    }
}

/// The checked operands of one recurrent layer, in f64, with the time axis first.
struct Operands {
    seq: usize,
    batch: usize,
    input: usize,
    /// Gates times hidden size: the rows of W and R per direction.
    gh: usize,
    hidden: usize,
    dirs: usize,
    /// `[seq, batch, input]`.
    x: Vec<f64>,
    /// `[dirs, gates*hidden, input]`.
    w: Vec<f64>,
    /// `[dirs, gates*hidden, hidden]`.
    r: Vec<f64>,
    /// `[dirs, 2*gates*hidden]` (zeros when absent).
    b: Vec<f64>,
    lens: Vec<usize>,
    /// `[dirs, batch, hidden]`.
    h0: Vec<f64>,
    c0: Vec<f64>,
    /// `[dirs, 3*hidden]` (zeros when absent).
    p: Vec<f64>,
}

fn f64s(t: &Tensor, what: &str, shape: &[usize], dtype: DType) -> Result<Vec<f64>, String> {
    if t.shape() != shape {
        return Err(format!(
            "{what} has shape {:?}, expected {shape:?}",
            t.shape()
        ));
    }
    if t.dtype() != dtype {
        return Err(format!("{what} has dtype {}, X has {dtype}", t.dtype()));
    }
    Ok(floats::<f64>(t, what)?.into_owned())
}

/// Swaps the two leading axes of a `[a, b, rest]` array.
fn swap01(v: &[f64], a: usize, b: usize, rest: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * rest..(j * a + i + 1) * rest]
                .copy_from_slice(&v[(i * b + j) * rest..(i * b + j + 1) * rest]);
        }
    }
    out
}

fn operands(
    r: &Recurrent,
    gates: usize,
    lstm: bool,
    inputs: &[Option<&Tensor>],
) -> Result<(Operands, DType), String> {
    let xt = input(inputs, 0)?;
    let dtype = float_dtype(xt, "X")?;
    let (wt, rt) = (input(inputs, 1)?, input(inputs, 2)?);
    if xt.rank() != 3 || wt.rank() != 3 || rt.rank() != 3 {
        return Err(format!(
            "X, W and R must have rank 3, got shapes {:?}, {:?}, {:?}",
            xt.shape(),
            wt.shape(),
            rt.shape()
        ));
    }
    let dirs = r.direction.count();
    let xs = xt.shape();
    let (seq, batch, isz) = if r.layout == 0 {
        (xs[0], xs[1], xs[2])
    } else {
        (xs[1], xs[0], xs[2])
    };
    let hidden = match r.hidden_size {
        Some(h) => h as usize,
        None => rt.shape()[2],
    };
    let gh = gates * hidden;
    let w = f64s(wt, "W", &[dirs, gh, isz], dtype)?;
    let rr = f64s(rt, "R", &[dirs, gh, hidden], dtype)?;
    let b = match optional(inputs, 3) {
        Some(t) => f64s(t, "B", &[dirs, 2 * gh], dtype)?,
        None => vec![0.0; dirs * 2 * gh],
    };
    let lens = match optional(inputs, 4) {
        None => vec![seq; batch],
        Some(t) => {
            if t.shape() != [batch] || !t.dtype().is_integer() {
                return Err(format!(
                    "sequence_lens must be an integer tensor of shape [{batch}], got {} {:?}",
                    t.dtype(),
                    t.shape()
                ));
            }
            let v = t.to_i64_vec().map_err(|e| e.to_string())?;
            if let Some(bad) = v.iter().find(|&&l| l < 0 || l as usize > seq) {
                return Err(format!("sequence length {bad} is outside 0..={seq}"));
            }
            v.into_iter().map(|l| l as usize).collect()
        }
    };
    let state = |i: usize, what: &str| -> Result<Vec<f64>, String> {
        match optional(inputs, i) {
            None => Ok(vec![0.0; dirs * batch * hidden]),
            Some(t) if r.layout == 0 => f64s(t, what, &[dirs, batch, hidden], dtype),
            Some(t) => Ok(swap01(
                &f64s(t, what, &[batch, dirs, hidden], dtype)?,
                batch,
                dirs,
                hidden,
            )),
        }
    };
    let h0 = state(5, "initial_h")?;
    let (c0, p) = if lstm {
        let p = match optional(inputs, 7) {
            Some(t) => f64s(t, "P", &[dirs, 3 * hidden], dtype)?,
            None => vec![0.0; dirs * 3 * hidden],
        };
        (state(6, "initial_c")?, p)
    } else {
        (Vec::new(), Vec::new())
    };
    let xv = f64s(xt, "X", xs, dtype)?;
    let x = if r.layout == 0 {
        xv
    } else {
        swap01(&xv, batch, seq, isz)
    };
    Ok((
        Operands {
            seq,
            batch,
            input: isz,
            gh,
            hidden,
            dirs,
            x,
            w,
            r: rr,
            b,
            lens,
            h0,
            c0,
            p,
        },
        dtype,
    ))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Lstm,
    Gru,
    Rnn,
}

pub fn run(
    op: &RnnOp,
    inputs: &[Option<&Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let (kind, r) = match op {
        RnnOp::Lstm(r) => (Kind::Lstm, r),
        RnnOp::Gru(r) => (Kind::Gru, r),
        RnnOp::Rnn(r) => (Kind::Rnn, r),
    };
    let gates = op.gates();
    let (o, dtype) = operands(r, gates, kind == Kind::Lstm, inputs)?;
    let (seq, batch, hidden, dirs) = (o.seq, o.batch, o.hidden, o.dirs);
    let per_dir = match kind {
        Kind::Lstm => 3,
        Kind::Gru => 2,
        Kind::Rnn => 1,
    };
    if r.activations.len() != per_dir * dirs {
        return Err(format!(
            "expected {} activations, got {}",
            per_dir * dirs,
            r.activations.len()
        ));
    }
    let mut y = vec![0.0; count(&[seq, dirs, batch, hidden])?];
    let mut yh = vec![0.0; dirs * batch * hidden];
    let mut yc = vec![0.0; dirs * batch * hidden];
    for d in 0..dirs {
        let reverse = r.direction == Direction::Reverse || d == 1;
        let acts = &r.activations[d * per_dir..(d + 1) * per_dir];
        let (h, c) = run_direction(kind, r, &o, d, reverse, acts, &mut y)?;
        yh[d * batch * hidden..(d + 1) * batch * hidden].copy_from_slice(&h);
        if kind == Kind::Lstm {
            yc[d * batch * hidden..(d + 1) * batch * hidden].copy_from_slice(&c);
        }
    }
    let (y, yh, yc, y_shape, s_shape) = if r.layout == 0 {
        (
            y,
            yh,
            yc,
            vec![seq, dirs, batch, hidden],
            vec![dirs, batch, hidden],
        )
    } else {
        // [seq, dirs, batch, h] -> [batch, seq, dirs, h]
        let mut t = vec![0.0; y.len()];
        for s in 0..seq {
            for dd in 0..dirs {
                for b in 0..batch {
                    let src = ((s * dirs + dd) * batch + b) * hidden;
                    let dst = ((b * seq + s) * dirs + dd) * hidden;
                    t[dst..dst + hidden].copy_from_slice(&y[src..src + hidden]);
                }
            }
        }
        let yh = swap01(&yh, dirs, batch, hidden);
        let yc = swap01(&yc, dirs, batch, hidden);
        (
            t,
            yh,
            yc,
            vec![batch, seq, dirs, hidden],
            vec![batch, dirs, hidden],
        )
    };
    let mut out = vec![
        to_tensor(y_shape, y, dtype)?,
        to_tensor(s_shape.clone(), yh, dtype)?,
    ];
    if kind == Kind::Lstm {
        out.push(to_tensor(s_shape, yc, dtype)?);
    }
    Ok(out)
}

/// Runs one direction, writing its slice of `y` (`[seq, dirs, batch, hidden]`), and
/// returns the final hidden and cell states (`[batch, hidden]`).
fn run_direction(
    kind: Kind,
    r: &Recurrent,
    o: &Operands,
    d: usize,
    reverse: bool,
    acts: &[Activation],
    y: &mut [f64],
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (seq, batch, hidden, dirs, isz) = (o.seq, o.batch, o.hidden, o.dirs, o.input);
    let gh = o.gh;
    let w = &o.w[d * gh * isz..(d + 1) * gh * isz];
    let rw = &o.r[d * gh * hidden..(d + 1) * gh * hidden];
    let (wb, rb) = (
        &o.b[d * 2 * gh..d * 2 * gh + gh],
        &o.b[d * 2 * gh + gh..(d + 1) * 2 * gh],
    );
    // Input projections of every step at once: [seq*batch, gh].
    let mut xw = vec![0.0; seq * batch * gh];
    gemm_acc(
        seq * batch,
        gh,
        isz,
        &o.x,
        isz,
        &transpose(w, gh, isz),
        gh,
        &mut xw,
        gh,
    );
    let rt = transpose(rw, gh, hidden);
    let mut h = o.h0[d * batch * hidden..(d + 1) * batch * hidden].to_vec();
    let mut c = if kind == Kind::Lstm {
        o.c0[d * batch * hidden..(d + 1) * batch * hidden].to_vec()
    } else {
        Vec::new()
    };
    let clip = |v: f64| match r.clip {
        Some(t) => v.clamp(-(t as f64), t as f64),
        None => v,
    };
    let mut hr = vec![0.0; batch * gh];
    let mut rh = vec![0.0; batch * hidden];
    let mut gated = vec![0.0; batch * hidden];
    for step in 0..seq {
        let t = if reverse { seq - 1 - step } else { step };
        let active: Vec<bool> = o.lens.iter().map(|&l| t < l).collect();
        hr.fill(0.0);
        gemm_acc(batch, gh, hidden, &h, hidden, &rt, gh, &mut hr, gh);
        if kind == Kind::Gru && !r.linear_before_reset {
            // (r ⊙ H) · Rh^T needs the reset gate first.
            for b in 0..batch {
                for j in 0..hidden {
                    let k = hidden + j;
                    let pre = xw[(t * batch + b) * gh + k] + hr[b * gh + k] + wb[k] + rb[k];
                    gated[b * hidden + j] = act(acts[0], clip(pre)) * h[b * hidden + j];
                }
            }
            rh.fill(0.0);
            gemm_acc(
                batch,
                hidden,
                hidden,
                &gated,
                hidden,
                &rt[2 * hidden..],
                gh,
                &mut rh,
                hidden,
            );
        }
        for b in 0..batch {
            if !active[b] {
                continue;
            }
            let xg = &xw[(t * batch + b) * gh..(t * batch + b + 1) * gh];
            let hg = &hr[b * gh..(b + 1) * gh];
            let pre = |k: usize| xg[k] + hg[k] + wb[k] + rb[k];
            let yrow = ((t * dirs + d) * batch + b) * hidden;
            for j in 0..hidden {
                let idx = b * hidden + j;
                let new_h = match kind {
                    Kind::Rnn => act(acts[0], clip(pre(j))),
                    Kind::Gru => {
                        let z = act(acts[0], clip(pre(j)));
                        let rg = act(acts[0], clip(pre(hidden + j)));
                        let k = 2 * hidden + j;
                        let cand = if r.linear_before_reset {
                            xg[k] + wb[k] + rg * (hg[k] + rb[k])
                        } else {
                            xg[k] + wb[k] + rh[idx] + rb[k]
                        };
                        let ht = act(acts[1], clip(cand));
                        (1.0 - z) * ht + z * h[idx]
                    }
                    Kind::Lstm => {
                        let p = &o.p[d * 3 * hidden..(d + 1) * 3 * hidden];
                        let (pi, po, pf) = (p[j], p[hidden + j], p[2 * hidden + j]);
                        let cp = c[idx];
                        let i = act(acts[0], clip(pre(j) + pi * cp));
                        let f = if r.input_forget {
                            1.0 - i
                        } else {
                            act(acts[0], clip(pre(2 * hidden + j) + pf * cp))
                        };
                        let g = act(acts[1], clip(pre(3 * hidden + j)));
                        let cn = f * cp + i * g;
                        let og = act(acts[0], clip(pre(hidden + j) + po * cn));
                        c[idx] = cn;
                        og * act(acts[2], cn)
                    }
                };
                gated[idx] = new_h;
                y[yrow + j] = new_h;
            }
        }
        for b in 0..batch {
            if active[b] {
                h[b * hidden..(b + 1) * hidden]
                    .copy_from_slice(&gated[b * hidden..(b + 1) * hidden]);
            }
        }
    }
    Ok((h, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_ir::ops::rnn::Activation::{Sigmoid, Tanh};

    fn rec(direction: Direction, activations: Vec<Activation>) -> Recurrent {
        Recurrent {
            direction,
            hidden_size: None,
            activations,
            clip: None,
            layout: 0,
            input_forget: false,
            linear_before_reset: false,
        }
    }

    fn t(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn simple_rnn_by_hand() {
        // One hidden unit: h_t = tanh(x_t * 0.5 + h_{t-1} * 2).
        let x = t(vec![2, 1, 1], vec![1.0, -1.0]);
        let w = t(vec![1, 1, 1], vec![0.5]);
        let r = t(vec![1, 1, 1], vec![2.0]);
        let op = RnnOp::Rnn(rec(Direction::Forward, vec![Tanh]));
        let out = run(&op, &[Some(&x), Some(&w), Some(&r)], 2).unwrap();
        let h1 = 0.5f64.tanh();
        let h2 = (-0.5 + 2.0 * h1).tanh();
        let y = out[0].as_slice::<f32>().unwrap();
        assert!((y[0] as f64 - h1).abs() < 1e-6 && (y[1] as f64 - h2).abs() < 1e-6);
        assert_eq!(out[1].as_slice::<f32>().unwrap()[0], y[1]);
        let rev = RnnOp::Rnn(rec(Direction::Reverse, vec![Tanh]));
        let out = run(&rev, &[Some(&x), Some(&w), Some(&r)], 2).unwrap();
        let g2 = (-0.5f64).tanh();
        let g1 = (0.5 + 2.0 * g2).tanh();
        let y = out[0].as_slice::<f32>().unwrap();
        assert!((y[0] as f64 - g1).abs() < 1e-6 && (y[1] as f64 - g2).abs() < 1e-6);
    }

    #[test]
    fn lstm_shapes_and_errors() {
        let x = t(vec![3, 2, 4], vec![0.1; 24]);
        let w = t(vec![2, 20, 4], vec![0.05; 160]);
        let r = t(vec![2, 20, 5], vec![0.02; 200]);
        let op = RnnOp::Lstm(rec(
            Direction::Bidirectional,
            vec![Sigmoid, Tanh, Tanh, Sigmoid, Tanh, Tanh],
        ));
        let out = run(&op, &[Some(&x), Some(&w), Some(&r)], 3).unwrap();
        assert_eq!(out[0].shape(), &[3, 2, 2, 5]);
        assert_eq!(out[2].shape(), &[2, 2, 5]);
        let bad_r = t(vec![2, 20, 4], vec![0.0; 160]);
        assert!(run(&op, &[Some(&x), Some(&w), Some(&bad_r)], 3).is_err());
        let lens = Tensor::from_vec(vec![2], vec![3i32, 9]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&w), Some(&r), None, Some(&lens)], 3).is_err());
    }
}
