//! `If` whose condition is only known at run time: each branch planned ahead as its
//! own fast plan, reading the values it captures straight from the enclosing plan.

use std::sync::Mutex;

use slimnet_ir::ops::ControlOp;
use slimnet_ir::{Graph, Model, NodeId, ValueId};
use slimnet_tensor::DType;

use super::{Context, Lowered, Lowering};
use crate::optimize::{optimize, OptimizeOptions};
use crate::session::exec::Workspace;
use crate::session::plan::Plan;

/// One branch of an `If`, planned.
pub(crate) struct Branch {
    /// The branch as a graph of its own: what it captures from the enclosing graph
    /// became inputs (constants stay constants).
    pub plan: Plan,
    /// For each input of `plan.graph`, in order, the enclosing value that feeds it.
    pub feeds: Vec<ValueId>,
    /// The branch's arena, reused by every run. A plan runs one step at a time, so
    /// the lock is never contended.
    pub state: Mutex<Workspace>,
}

/// An `If` with both branches planned. Contract: the enclosing plan runs
/// `branches[0]` when the condition (one element) is non-zero, `branches[1]`
/// otherwise, and stores the branch's outputs in the node's outputs in order; every
/// output the enclosing plan keeps in its arena has the shape and dtype (f32) the
/// branch produces.
pub(crate) struct IfStep {
    pub branches: [Branch; 2],
}

/// Lowers an `If` when both branches can be planned on their own: every captured
/// value is a constant or has a concrete shape and a dtype, and every output the
/// enclosing plan keeps in its arena gets an f32 value of that shape from both.
pub(crate) fn lower_if(ctx: &Context, n: NodeId) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let slimnet_ir::Op::Control(ControlOp::If {
        then_branch,
        else_branch,
    }) = &node.op
    else {
        return Ok(None);
    };
    let (Some(then_plan), Some(else_plan)) =
        (branch(ctx, n, then_branch), branch(ctx, n, else_branch))
    else {
        return Ok(None);
    };
    Ok(Some(Lowering {
        kernel: Lowered::If(Box::new(IfStep {
            branches: [then_plan, else_plan],
        })),
        fused: Vec::new(),
        scratch_len: 0,
    }))
}

fn branch(ctx: &Context, n: NodeId, sub: &Graph) -> Option<Branch> {
    if sub.unreachable {
        return None;
    }
    let outer = ctx.graph.value_index();
    let mut g = sub.clone();
    for v in 0..g.values.len() {
        if !g.values[v].outer {
            continue;
        }
        let &o = outer.get(g.values[v].name.as_str())?;
        let value = &mut g.values[v];
        value.outer = false;
        match &ctx.graph.values[o].constant {
            Some(c) => {
                value.info = slimnet_ir::ValueInfo::of_tensor(c);
                value.constant = Some(c.clone());
            }
            None => {
                let shape = ctx.shapes[o].as_ref()?;
                let dtype = ctx.graph.values[o].info.dtype?;
                value.info = slimnet_ir::ValueInfo::known(dtype, shape);
                g.inputs.push(v);
            }
        }
    }
    // Values captured from further out by nested subgraphs are not resolved here.
    if !g.captured_names().is_empty() {
        return None;
    }
    // The nodes are parsed already; the default opset only keeps the optimizer from
    // fusing into ops of later opsets.
    let mut model = Model {
        graph: g,
        ..Default::default()
    };
    optimize(&mut model, &OptimizeOptions::default()).ok()?;
    let g = model.graph;
    let feeds = g
        .inputs
        .iter()
        .map(|&v| outer.get(g.values[v].name.as_str()).copied())
        .collect::<Option<Vec<ValueId>>>()?;
    let outputs = &ctx.graph.nodes[n].outputs;
    if g.outputs.len() != outputs.len() {
        return None;
    }
    for (&s, o) in g.outputs.iter().zip(outputs) {
        let Some(o) = *o else { continue };
        if super::is_f32(ctx, o)
            && (g.values[s].info.dtype != Some(DType::F32)
                || g.values[s].info.concrete_shape() != ctx.shapes[o])
        {
            return None;
        }
    }
    let plan = Plan::build(g, ctx.table, ctx.threads).ok()?;
    let ws = Workspace::new(&plan);
    Some(Branch {
        plan,
        feeds,
        state: Mutex::new(ws),
    })
}
