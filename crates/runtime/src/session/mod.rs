//! The fast runtime: a [`Session`] specializes a model to its input shapes, optimizes
//! the graph, lowers each node to a kernel from the kernel table (the reference
//! kernels where no fast one applies), plans one arena for the activations, and runs.

mod exec;
mod lower;
mod memory;
mod plan;

use std::time::Duration;

use slimnet_ir::{infer_shapes, Model};
use slimnet_kernels::{KernelTable, Threads};
use slimnet_tensor::{DType, Tensor};

use crate::optimize::{optimize, specialize, InputBinding, OptimizeOptions};
use crate::{check_inputs, ReferenceFolder, RuntimeError};
use exec::Workspace;
use plan::Plan;

/// How a session runs.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Threads for intra-op parallelism; `0` picks one per available CPU.
    pub threads: usize,
    /// Graph optimizations (folding, fusion) before planning.
    pub optimize: bool,
    /// Time every step (see [`Session::profile`]).
    pub profile: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: 0,
            optimize: true,
            profile: false,
        }
    }
}

/// What one step of the plan cost over the runs so far.
#[derive(Clone, Debug)]
pub struct StepProfile {
    /// The node's name (the first node of a fused group).
    pub node: String,
    /// Op types of the nodes the step runs, joined by `+`.
    pub op_types: String,
    /// The kernel that ran it.
    pub kernel: &'static str,
    pub total: Duration,
    pub calls: u64,
}

/// A summary of the plan for one binding of input shapes.
#[derive(Clone, Debug)]
pub struct PlanSummary {
    /// Nodes in the graph after specialization and optimization.
    pub nodes: usize,
    /// Steps in the plan (fused nodes count once).
    pub steps: usize,
    /// Steps that run the reference kernels.
    pub reference_steps: usize,
    /// The arena: every planned activation buffer, reused by liveness.
    pub arena_bytes: usize,
}

/// The key a plan is built for: each input's shape, and the value of small integer
/// inputs (such as a sample rate) that the plan is specialized on.
type PlanKey = Vec<(Vec<usize>, Option<Vec<i64>>)>;

/// Plans whose activations take less than this run on the calling thread alone:
/// every op of such a model is too small for another thread to pay for waking it.
const PARALLEL_MIN_ARENA_BYTES: usize = 1 << 20;

/// Integer inputs with at most this many elements are specialized on by value.
const SPECIALIZE_MAX_ELEMENTS: usize = 8;

/// A model prepared to run fast, with plans cached per input binding.
pub struct Session {
    model: Model,
    options: SessionOptions,
    table: &'static KernelTable,
    threads: Threads,
    /// The calling thread alone, for plans too small to split.
    single: Threads,
    plans: Vec<(PlanKey, Plan, Workspace)>,
}

impl Session {
    /// Prepares `model`; plans are built on the first run for each input binding.
    pub fn new(model: Model, options: SessionOptions) -> Result<Session, RuntimeError> {
        let table = slimnet_kernels::global().map_err(|e| RuntimeError::Graph(e.to_string()))?;
        let threads =
            Threads::new(options.threads).map_err(|e| RuntimeError::Graph(e.to_string()))?;
        Ok(Session {
            model,
            options,
            table,
            threads,
            single: Threads::single(),
            plans: Vec::new(),
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// How many threads kernels use.
    pub fn threads(&self) -> usize {
        self.threads.count()
    }

    /// Runs the model on named inputs (checked as [`check_inputs`] does) and returns
    /// its outputs by name, in graph order.
    pub fn run(
        &mut self,
        inputs: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        check_inputs(&self.model.graph, &inputs)?;
        let graph = &self.model.graph;
        let names: Vec<String> = graph
            .outputs
            .iter()
            .map(|&v| graph.values[v].name.clone())
            .collect();
        let ordered: Vec<&Tensor> = graph
            .inputs
            .iter()
            .map(|&v| {
                let name = &graph.values[v].name;
                &inputs.iter().find(|(n, _)| n == name).expect("checked").1
            })
            .collect();
        let mut outputs = Vec::new();
        self.run_into(&ordered, &mut outputs)?;
        Ok(names.into_iter().zip(outputs).collect())
    }

    /// Runs the model on inputs in the graph's declared order, writing the outputs (in
    /// graph order) into `outputs` and reusing its tensors where shapes match. Once a
    /// plan exists for these input shapes, a run allocates nothing on the heap when
    /// every step has a fast kernel and `outputs` already holds tensors of the right
    /// shapes.
    pub fn run_into(
        &mut self,
        inputs: &[&Tensor],
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), RuntimeError> {
        let index = match self
            .plans
            .iter()
            .position(|(k, _, _)| key_matches(k, inputs))
        {
            Some(i) => i,
            None => self.build_plan(inputs)?,
        };
        let (_, plan, ws) = &mut self.plans[index];
        let threads = if plan.arena_bytes() >= PARALLEL_MIN_ARENA_BYTES {
            &self.threads
        } else {
            &self.single
        };
        let (table, profile) = (self.table, self.options.profile);
        threads.install(|| exec::run(plan, ws, table, threads, inputs, outputs, profile))
    }

    /// Builds (or finds) the plan for these inputs and summarizes it.
    pub fn plan_summary(&mut self, inputs: &[&Tensor]) -> Result<PlanSummary, RuntimeError> {
        let index = match self
            .plans
            .iter()
            .position(|(k, _, _)| key_matches(k, inputs))
        {
            Some(i) => i,
            None => self.build_plan(inputs)?,
        };
        let plan = &self.plans[index].1;
        Ok(PlanSummary {
            nodes: plan.graph.nodes.len(),
            steps: plan.steps.len(),
            reference_steps: plan
                .steps
                .iter()
                .filter(|s| matches!(s.kernel, lower::Lowered::Reference))
                .count(),
            arena_bytes: plan.arena_bytes(),
        })
    }

    /// Per-step timings of the most recently built plan, accumulated over its runs
    /// (empty unless [`SessionOptions::profile`] is set).
    pub fn profile(&self) -> Vec<StepProfile> {
        let Some((_, plan, ws)) = self.plans.last() else {
            return Vec::new();
        };
        plan.steps
            .iter()
            .zip(&ws.timings)
            .map(|(s, &(total, calls))| StepProfile {
                node: plan.graph.nodes[s.node].display_name(&plan.graph),
                op_types: s.op_types.clone(),
                kernel: s.kernel.name(),
                total,
                calls,
            })
            .collect()
    }

    /// Clears the timings gathered so far (warm-up runs, say).
    pub fn reset_profile(&mut self) {
        for (_, _, ws) in &mut self.plans {
            ws.timings.iter_mut().for_each(|t| *t = Default::default());
        }
    }

    fn build_plan(&mut self, inputs: &[&Tensor]) -> Result<usize, RuntimeError> {
        let graph = &self.model.graph;
        let named: Vec<(String, Tensor)> = graph
            .inputs
            .iter()
            .zip(inputs)
            .map(|(&v, t)| (graph.values[v].name.clone(), (*t).clone()))
            .collect();
        if named.len() != graph.inputs.len() {
            return Err(RuntimeError::Graph(format!(
                "the model takes {} inputs, got {}",
                graph.inputs.len(),
                inputs.len()
            )));
        }
        check_inputs(graph, &named)?;
        let key: PlanKey = inputs.iter().map(|t| key_of(t)).collect();
        let bindings: Vec<InputBinding> = named
            .into_iter()
            .map(|(name, t)| InputBinding {
                name,
                shape: t.shape().to_vec(),
                value: small_int_value(&t).is_some().then_some(t),
            })
            .collect();
        let mut specialized = self.model.clone();
        specialize(&mut specialized, &bindings)?;
        if self.options.optimize {
            optimize(
                &mut specialized,
                &OptimizeOptions {
                    fuse_quantized: true,
                    ..OptimizeOptions::default()
                },
            )?;
        } else {
            infer_shapes(&mut specialized.graph, &ReferenceFolder)
                .map_err(|e| RuntimeError::Graph(e.to_string()))?;
        }
        let plan = Plan::build(specialized.graph, self.table, &self.threads)?;
        let ws = Workspace::new(&plan);
        if self.plans.len() >= 4 {
            self.plans.remove(0);
        }
        self.plans.push((key, plan, ws));
        Ok(self.plans.len() - 1)
    }
}

fn small_int_value(t: &Tensor) -> Option<Vec<i64>> {
    (matches!(t.dtype(), DType::I64 | DType::I32) && t.len() <= SPECIALIZE_MAX_ELEMENTS)
        .then(|| t.to_i64_vec().ok())
        .flatten()
}

fn key_of(t: &Tensor) -> (Vec<usize>, Option<Vec<i64>>) {
    (t.shape().to_vec(), small_int_value(t))
}

/// Whether `inputs` have the shapes (and small integer values) of `key`, without
/// allocating.
fn key_matches(key: &PlanKey, inputs: &[&Tensor]) -> bool {
    key.len() == inputs.len()
        && key.iter().zip(inputs).all(|((shape, value), t)| {
            shape.as_slice() == t.shape()
                && match value {
                    None => true,
                    Some(v) => match t.data() {
                        slimnet_tensor::TensorData::I64(x) => x == v,
                        slimnet_tensor::TensorData::I32(x) => {
                            x.iter().zip(v).all(|(a, b)| i64::from(*a) == *b)
                        }
                        _ => false,
                    },
                }
        })
}
