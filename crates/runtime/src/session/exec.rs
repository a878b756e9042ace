//! Running a plan: the arena, the dynamic values, and one call per step.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use slimnet_ir::{Op, ValueId};
use slimnet_kernels::{KernelTable, Threads};
use slimnet_tensor::{Tensor, TensorData};

use super::lower::{GemmStep, IfStep, Lowered};
use super::plan::{Plan, Slot, Step};
use crate::interpreter::run_control;
use crate::reference::run_op;
use crate::RuntimeError;

/// The memory a plan runs in, allocated once and reused by every run.
pub(crate) struct Workspace {
    arena: Vec<f32>,
    scratch: Vec<f32>,
    dynamic: Vec<Option<Tensor>>,
    /// Per step: total time and calls, when profiling.
    pub timings: Vec<(std::time::Duration, u64)>,
}

impl Workspace {
    pub(crate) fn new(plan: &Plan) -> Self {
        Workspace {
            arena: vec![0.0; plan.arena_len],
            scratch: vec![0.0; plan.scratch_len],
            dynamic: (0..plan.graph.values.len()).map(|_| None).collect(),
            timings: vec![Default::default(); plan.steps.len()],
        }
    }
}

/// Read and write access to values during a run. Arena slices are carved from one
/// allocation through a raw pointer: the memory plan keeps every step's outputs
/// disjoint from its inputs and from each other, so the slices never overlap.
struct Io<'a> {
    base: *mut f32,
    plan: &'a Plan,
    dynamic: &'a [Option<Tensor>],
}

impl<'a> Io<'a> {
    /// The f32 data of a value a step reads.
    fn read(&self, v: ValueId) -> Result<&'a [f32], String> {
        match &self.plan.slots[v] {
            Slot::Arena { offset, len } => {
                // SAFETY: the arena holds `arena_len` elements and the plan placed this
                // buffer inside it; no output of the running step overlaps it.
                Ok(unsafe { std::slice::from_raw_parts(self.base.add(*offset), *len) })
            }
            Slot::Constant(c) => c.as_slice::<f32>().map_err(|e| e.to_string()),
            Slot::Dynamic => self.dynamic[v]
                .as_ref()
                .ok_or_else(|| format!("'{}' has no value", self.name(v)))?
                .as_slice::<f32>()
                .map_err(|e| e.to_string()),
            Slot::Absent => Err(format!("'{}' is never computed", self.name(v))),
        }
    }

    /// The arena buffer of a value a step writes.
    fn write(&self, v: ValueId) -> Result<&'a mut [f32], String> {
        match &self.plan.slots[v] {
            Slot::Arena { offset, len } => {
                // SAFETY: as in `read`; outputs of one step never overlap anything the
                // step reads or another of its outputs.
                Ok(unsafe { std::slice::from_raw_parts_mut(self.base.add(*offset), *len) })
            }
            _ => Err(format!("'{}' has no planned buffer", self.name(v))),
        }
    }

    fn name(&self, v: ValueId) -> &str {
        &self.plan.graph.values[v].name
    }

    /// A value as a tensor, borrowed where it already is one.
    fn tensor(&self, v: ValueId) -> Result<Cow<'a, Tensor>, String> {
        match &self.plan.slots[v] {
            Slot::Constant(c) => Ok(Cow::Borrowed(c.as_ref())),
            Slot::Dynamic => self.dynamic[v]
                .as_ref()
                .map(Cow::Borrowed)
                .ok_or_else(|| format!("'{}' has no value", self.name(v))),
            Slot::Arena { .. } => {
                let shape = self.plan.shapes[v].clone().unwrap_or_default();
                let data = self.read(v)?.to_vec();
                Tensor::from_vec(shape, data)
                    .map(Cow::Owned)
                    .map_err(|e| e.to_string())
            }
            Slot::Absent => Err(format!("'{}' is never computed", self.name(v))),
        }
    }
}

/// Runs `plan` on inputs given in the graph's declared order; returns the outputs in
/// the graph's order, reusing the tensors in `outputs` when their shapes match.
pub(crate) fn run(
    plan: &Plan,
    ws: &mut Workspace,
    table: &KernelTable,
    threads: &Threads,
    inputs: &[&Tensor],
    outputs: &mut Vec<Tensor>,
    profile: bool,
) -> Result<(), RuntimeError> {
    let g = &plan.graph;
    for (&v, t) in g.inputs.iter().zip(inputs) {
        match &plan.slots[v] {
            Slot::Arena { offset, len } => {
                let src = t.as_slice::<f32>().map_err(|e| RuntimeError::Input {
                    name: g.values[v].name.clone(),
                    reason: e.to_string(),
                })?;
                ws.arena[*offset..*offset + *len].copy_from_slice(src);
            }
            Slot::Dynamic => ws.dynamic[v] = Some((*t).clone()),
            _ => {}
        }
    }
    run_steps(plan, ws, table, threads, profile)?;
    outputs.truncate(g.outputs.len());
    for (k, &v) in g.outputs.iter().enumerate() {
        let io = Io {
            base: ws.arena.as_mut_ptr(),
            plan,
            dynamic: &ws.dynamic,
        };
        let fresh = match &plan.slots[v] {
            Slot::Arena { .. } => {
                let data = io.read(v).map_err(RuntimeError::Graph)?;
                let shape = plan.shapes[v].as_deref().unwrap_or_default();
                match outputs.get_mut(k) {
                    Some(out) if out.shape() == shape && out.as_slice::<f32>().is_ok() => {
                        out.as_mut_slice::<f32>()
                            .expect("checked f32")
                            .copy_from_slice(data);
                        None
                    }
                    _ => Some(
                        Tensor::from_vec(shape.to_vec(), data.to_vec())
                            .map_err(|e| RuntimeError::Graph(e.to_string()))?,
                    ),
                }
            }
            _ => Some(
                io.tensor(v)
                    .map_err(|e| RuntimeError::Graph(format!("graph output: {e}")))?
                    .into_owned(),
            ),
        };
        if let Some(t) = fresh {
            if k < outputs.len() {
                outputs[k] = t;
            } else {
                outputs.push(t);
            }
        }
    }
    Ok(())
}

/// Runs every step of `plan` on the inputs already in `ws`.
fn run_steps(
    plan: &Plan,
    ws: &mut Workspace,
    table: &KernelTable,
    threads: &Threads,
    profile: bool,
) -> Result<(), RuntimeError> {
    let g = &plan.graph;
    for (i, step) in plan.steps.iter().enumerate() {
        let started = profile.then(Instant::now);
        run_step(plan, ws, table, threads, step).map_err(|reason| {
            let node = &g.nodes[step.node];
            RuntimeError::Node {
                node: node.display_name(g),
                op_type: step.op_types.clone(),
                reason,
            }
        })?;
        if let Some(t0) = started {
            let entry = &mut ws.timings[i];
            entry.0 += t0.elapsed();
            entry.1 += 1;
        }
        for &v in &step.release {
            ws.dynamic[v] = None;
        }
    }
    Ok(())
}

fn run_step(
    plan: &Plan,
    ws: &mut Workspace,
    table: &KernelTable,
    threads: &Threads,
    step: &Step,
) -> Result<(), String> {
    let io = Io {
        base: ws.arena.as_mut_ptr(),
        plan,
        dynamic: &ws.dynamic,
    };
    let out = |k: usize| -> Result<ValueId, String> {
        step.outputs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| "output missing".to_string())
    };
    let input = |k: usize| -> Result<ValueId, String> {
        step.inputs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| "input missing".to_string())
    };
    match &step.kernel {
        Lowered::Alias => {
            let (i, o) = (input(0)?, out(0)?);
            match (&plan.slots[i], &plan.slots[o]) {
                (Slot::Arena { offset: a, .. }, Slot::Arena { offset: b, .. }) if a == b => Ok(()),
                _ => run_reference(plan, ws, step),
            }
        }
        Lowered::Gemm(gemm) => gemm.run(
            table,
            threads,
            io.read(input(0)?)?,
            gemm_b(&io, gemm, step)?,
            io.write(out(0)?)?,
        ),
        Lowered::Conv(conv) => conv.run(
            table,
            threads,
            io.read(input(0)?)?,
            io.write(out(0)?)?,
            &mut ws.scratch,
        ),
        Lowered::QConv(q) => q.run(
            table,
            threads,
            io.read(input(0)?)?,
            io.write(out(0)?)?,
            &mut ws.scratch,
        ),
        Lowered::QMatMul(q) => q.run(
            table,
            threads,
            io.read(input(0)?)?,
            io.write(out(0)?)?,
            &mut ws.scratch,
        ),
        Lowered::Q4MatMul(q) => q.run(table, threads, io.read(input(0)?)?, io.write(out(0)?)?),
        Lowered::Eltwise(e) => {
            let b = match step.inputs.get(1).copied().flatten() {
                Some(v) => Some(io.read(v)?),
                None => None,
            };
            e.run(table, threads, io.read(input(0)?)?, b, io.write(out(0)?)?)
        }
        Lowered::Pool(p) => p.run(table, threads, io.read(input(0)?)?, io.write(out(0)?)?),
        Lowered::Resize(r) => r.run(threads, io.read(input(0)?)?, io.write(out(0)?)?),
        Lowered::Deconv(d) => d.run(
            table,
            threads,
            io.read(input(0)?)?,
            io.write(out(0)?)?,
            &mut ws.scratch,
        ),
        Lowered::Move(m) => m.run(threads, |k| io.read(input(k)?), |k| io.write(out(k)?)),
        Lowered::Rnn(l) => {
            let read = |k: usize| step.inputs.get(k).copied().flatten().map(|v| io.read(v));
            let write = |k: usize| step.outputs.get(k).copied().flatten().map(|v| io.write(v));
            l.run(
                table,
                threads,
                io.read(input(0)?)?,
                [read(5).transpose()?, read(6).transpose()?],
                [
                    write(0).transpose()?,
                    write(1).transpose()?,
                    write(2).transpose()?,
                ],
                &mut ws.scratch,
            )
        }
        Lowered::Norm(s) => s.run(table, io.read(input(0)?)?, io.write(out(0)?)?),
        Lowered::If(s) => run_if(plan, ws, table, threads, step, s),
        Lowered::Reference => run_reference(plan, ws, step),
    }
}

fn gemm_b<'a>(io: &Io<'a>, gemm: &'a GemmStep, step: &Step) -> Result<&'a [f32], String> {
    if gemm.b_packed.is_some() {
        return Ok(&[]);
    }
    match &gemm.b_const {
        Some(b) => Ok(b),
        None => io.read(step.inputs[1].ok_or("input B missing")?),
    }
}

/// Runs a step's node with its reference kernel (or the interpreter, for control
/// flow) and stores the outputs in their slots.
fn run_reference(plan: &Plan, ws: &mut Workspace, step: &Step) -> Result<(), String> {
    let g = &plan.graph;
    let node = &g.nodes[step.node];
    let results = {
        let io = Io {
            base: ws.arena.as_mut_ptr(),
            plan,
            dynamic: &ws.dynamic,
        };
        let owned: Vec<Option<Cow<Tensor>>> = node
            .inputs
            .iter()
            .map(|i| i.map(|v| io.tensor(v)).transpose())
            .collect::<Result<_, _>>()?;
        let ins: Vec<Option<&Tensor>> = owned.iter().map(|t| t.as_deref()).collect();
        match &node.op {
            Op::Control(c) => {
                let captured: HashMap<&str, Cow<Tensor>> = plan
                    .captures
                    .get(&step.node)
                    .into_iter()
                    .flatten()
                    .map(|(name, v)| io.tensor(*v).map(|t| (name.as_str(), t)))
                    .collect::<Result<_, _>>()?;
                let lookup =
                    |name: &str| -> Option<&Tensor> { captured.get(name).map(|t| t.as_ref()) };
                run_control(g, node, c, &ins, &lookup).map_err(|e| e.to_string())?
            }
            op => run_op(op, &ins, node.outputs.len())?,
        }
    };
    for (slot, t) in node.outputs.iter().zip(results) {
        let Some(v) = *slot else { continue };
        match &plan.slots[v] {
            Slot::Arena { offset, len } => {
                let planned = plan.shapes[v].as_deref().unwrap_or_default();
                if t.shape() != planned {
                    return Err(format!(
                        "'{}' came out {:?}, planned {:?}",
                        g.values[v].name,
                        t.shape(),
                        planned
                    ));
                }
                let TensorData::F32(data) = t.data() else {
                    return Err(format!(
                        "'{}' came out {}, planned f32",
                        g.values[v].name,
                        t.dtype()
                    ));
                };
                ws.arena[*offset..*offset + *len].copy_from_slice(data);
            }
            Slot::Dynamic => ws.dynamic[v] = Some(t),
            _ => {}
        }
    }
    Ok(())
}

/// Runs the branch of an `If` step that its condition picks: feeds the branch the
/// captured values, runs its plan, and stores its outputs in the step's slots.
fn run_if(
    plan: &Plan,
    ws: &mut Workspace,
    table: &KernelTable,
    threads: &Threads,
    step: &Step,
    s: &IfStep,
) -> Result<(), String> {
    let io = Io {
        base: ws.arena.as_mut_ptr(),
        plan,
        dynamic: &ws.dynamic,
    };
    let cond = io.tensor(
        step.inputs
            .first()
            .copied()
            .flatten()
            .ok_or("condition missing")?,
    )?;
    if cond.len() != 1 {
        return Err(format!(
            "condition must hold one element, got shape {:?}",
            cond.shape()
        ));
    }
    let take = match cond.data() {
        TensorData::Bool(b) => b[0],
        _ => cond.to_vec::<f64>().map_err(|e| e.to_string())?[0] != 0.0,
    };
    let branch = &s.branches[usize::from(!take)];
    let mut sub_ws = branch
        .state
        .lock()
        .map_err(|_| "branch workspace poisoned")?;
    let sub = &branch.plan;
    for (&si, &o) in sub.graph.inputs.iter().zip(&branch.feeds) {
        match &sub.slots[si] {
            Slot::Arena { offset, len } => {
                sub_ws.arena[*offset..*offset + *len].copy_from_slice(io.read(o)?)
            }
            Slot::Dynamic => sub_ws.dynamic[si] = Some(io.tensor(o)?.into_owned()),
            _ => {}
        }
    }
    run_steps(sub, &mut sub_ws, table, threads, false).map_err(|e| e.to_string())?;
    let sub_io = Io {
        base: sub_ws.arena.as_mut_ptr(),
        plan: sub,
        dynamic: &sub_ws.dynamic,
    };
    let mut fresh = Vec::new();
    for (&sv, o) in sub.graph.outputs.iter().zip(&step.outputs) {
        let Some(o) = *o else { continue };
        match &plan.slots[o] {
            Slot::Arena { .. } => {
                let (src, dst) = (sub_io.read(sv)?, io.write(o)?);
                if src.len() != dst.len() {
                    return Err(format!(
                        "'{}' came out with {} values, planned {}",
                        plan.graph.values[o].name,
                        src.len(),
                        dst.len()
                    ));
                }
                dst.copy_from_slice(src);
            }
            Slot::Dynamic => fresh.push((o, sub_io.tensor(sv)?.into_owned())),
            _ => {}
        }
    }
    drop(sub_ws);
    for (o, t) in fresh {
        ws.dynamic[o] = Some(t);
    }
    Ok(())
}
