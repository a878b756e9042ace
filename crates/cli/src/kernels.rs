//! `slimnet kernels`: the CPU features found and the kernel picked for each slot.

use clap::Args;
use slimnet::kernels::{report, TIER_ENV};

/// Arguments of `slimnet kernels`.
#[derive(Args)]
pub struct KernelsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Prints the report; fails when `SLIMNET_KERNEL_TIER` names an unknown or
/// unavailable tier.
pub fn kernels(args: KernelsArgs) -> anyhow::Result<()> {
    let r = report()?;
    if args.json {
        let features: serde_json::Map<String, serde_json::Value> = r
            .features
            .iter()
            .map(|(n, ok)| (n.to_string(), (*ok).into()))
            .collect();
        let tiers: serde_json::Map<String, serde_json::Value> = r
            .tiers
            .iter()
            .map(|(t, ok)| (t.name().to_string(), (*ok).into()))
            .collect();
        let picks: serde_json::Map<String, serde_json::Value> = r
            .picks
            .iter()
            .map(|(slot, k)| (slot.to_string(), (*k).into()))
            .collect();
        let out = serde_json::json!({
            "arch": r.arch,
            "features": features,
            "tiers": tiers,
            "tier": r.tier.name(),
            "forced": r.forced,
            "kernels": picks,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("arch: {}", r.arch);
    let found: Vec<&str> = r.features.iter().filter(|f| f.1).map(|f| f.0).collect();
    let lacking: Vec<&str> = r.features.iter().filter(|f| !f.1).map(|f| f.0).collect();
    println!("cpu features found: {}", found.join(" "));
    if !lacking.is_empty() {
        println!("cpu features not found: {}", lacking.join(" "));
    }
    let avail: Vec<&str> = r.tiers.iter().filter(|t| t.1).map(|t| t.0.name()).collect();
    println!("tiers available: {}", avail.join(" "));
    let how = if r.forced {
        format!("forced by {TIER_ENV}")
    } else {
        "best available".to_string()
    };
    println!("tier: {} ({how})", r.tier.name());
    println!("kernels:");
    let width = r
        .picks
        .iter()
        .map(|(slot, _)| slot.len())
        .max()
        .unwrap_or(0);
    for (slot, k) in &r.picks {
        println!("  {slot:width$}  {k}");
    }
    Ok(())
}
