//! `slimnet kernels`: prints the picks, follows `SLIMNET_KERNEL_TIER`, and refuses an
//! unknown tier with an error instead of running anything.

use std::process::Command;

fn kernels(tier: Option<&str>, json: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slimnet"));
    cmd.arg("kernels");
    if json {
        cmd.arg("--json");
    }
    match tier {
        Some(t) => cmd.env("SLIMNET_KERNEL_TIER", t),
        None => cmd.env_remove("SLIMNET_KERNEL_TIER"),
    };
    cmd.output().unwrap()
}

#[test]
fn prints_picks_and_follows_the_tier_variable() {
    let out = kernels(None, false);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sgemm"));

    let out = kernels(Some("portable"), true);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tier"], "portable");
    assert_eq!(v["forced"], true);
    assert_eq!(v["kernels"]["sgemm"], "sgemm_portable_ikj");
}

#[test]
fn unknown_tier_is_an_error() {
    let out = kernels(Some("sse9"), false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kernel tier"));
}
