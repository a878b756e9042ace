//! Intra-op parallelism: a fixed set of worker threads that kernels split their work
//! over. With one thread, work runs inline on the caller with no synchronisation.

use crate::error::KernelError;

/// The threads a kernel may use. Built once per session.
pub struct Threads {
    count: usize,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads")
            .field("count", &self.count)
            .finish()
    }
}

impl Threads {
    /// One thread: the caller's own. Never spawns or synchronises.
    pub fn single() -> Self {
        Threads {
            count: 1,
            pool: None,
        }
    }

    /// `count` threads (the caller's plus `count - 1` workers); `0` means one per
    /// physical core this process may run on (see [`default_thread_count`]).
    pub fn new(count: usize) -> Result<Self, KernelError> {
        let count = if count == 0 {
            default_thread_count()
        } else {
            count
        };
        if count == 1 {
            return Ok(Threads::single());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .thread_name(|i| format!("slimnet-worker-{i}"))
            .build()
            .map_err(|e| KernelError::Threads(e.to_string()))?;
        Ok(Threads {
            count,
            pool: Some(pool),
        })
    }

    /// How many threads work is split over.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Runs `f` on one of the worker threads (inline with one thread), so that the
    /// kernels it calls split their work among threads that are already awake
    /// instead of handing every call over from an outside thread.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Calls `task(i)` for every `i` in `0..tasks`, spread over the threads; returns
    /// when all have finished. With one thread (or one task) it is a plain loop.
    pub fn for_each(&self, tasks: usize, task: impl Fn(usize) + Sync + Send) {
        match &self.pool {
            Some(pool) if tasks > 1 => pool.install(|| {
                use rayon::prelude::*;
                (0..tasks).into_par_iter().for_each(task)
            }),
            _ => (0..tasks).for_each(task),
        }
    }
}

/// One thread per physical core: the CPUs this process may run on, less SMT
/// siblings (two logical CPUs of one core share its FMA units, so a second thread
/// there adds contention, not throughput). Where the topology cannot be read, every
/// available CPU counts.
pub fn default_thread_count() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    physical_cores().map_or(logical, |p| p.clamp(1, logical))
}

/// Distinct (package, core) pairs in Linux's CPU topology, if readable.
fn physical_cores() -> Option<usize> {
    let mut cores = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/sys/devices/system/cpu").ok()? {
        let path = entry.ok()?.path();
        let name = path.file_name()?.to_str()?;
        if !name.starts_with("cpu")
            || !name[3..].chars().all(|c| c.is_ascii_digit())
            || name.len() == 3
        {
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(path.join("topology").join(f)).ok();
        if let (Some(package), Some(core)) = (read("physical_package_id"), read("core_id")) {
            cores.insert((package.trim().to_string(), core.trim().to_string()));
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}
