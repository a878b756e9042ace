//! Prints sgemm GFLOP/s for square sizes 256, 512 and 1024, for every tier this CPU
//! supports (one thread; best of several runs). Run with
//! `cargo run --release -p slimnet-kernels --example gemm`.

use std::time::Instant;

use slimnet_kernels::{CpuFeatures, KernelTable, SgemmShape, Tier};

fn main() {
    let f = CpuFeatures::detect();
    for n in [256usize, 512, 1024] {
        let a: Vec<f32> = (0..n * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let b: Vec<f32> = (0..n * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
            .collect();
        let mut c = vec![0.0f32; n * n];
        let shape = SgemmShape::dense(n, n, n);
        let flops = 2.0 * (n as f64).powi(3);
        for tier in Tier::ALL.into_iter().filter(|t| t.is_available(&f)) {
            let table = KernelTable::for_tier(tier).unwrap();
            let reps = ((2e9 / flops) as usize).clamp(1, 200);
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t0 = Instant::now();
                for _ in 0..reps {
                    table.sgemm(&shape, &a, &b, 0.0, &mut c).unwrap();
                }
                best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
            }
            let name = table.picks()[0].1;
            println!(
                "n={n:5} {:9} {name:24} {:7.1} GFLOP/s",
                tier.name(),
                flops / best / 1e9
            );
        }
    }
}
