//! `claimsmith-load drive ...` and `claimsmith-load report ...`: see the
//! library's documentation.

use anyhow::{Context, Result};
use claimsmith_load::{DriveArgs, drive, report};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Load driver and report writer of `cargo xtask bench`")]
enum Command {
    /// Drives complete OIDC code-flow logins; prints logins/s, p50/p99, errors.
    Drive(DriveArgs),
    /// Writes the benchmark table from the JSON the runs left.
    Report(report::Args),
}

fn main() -> Result<()> {
    let args = match Command::parse() {
        Command::Drive(args) => args,
        Command::Report(args) => return report::write(&args),
    };
    // One thread: the driver must leave the other core to the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the driver's runtime")?;
    let report = runtime.block_on(drive(&args))?;
    println!(
        "{}: {:.0} logins/s, p50 {:.1} ms, p99 {:.1} ms, {} logins, {} errors{}{}",
        report.label,
        report.logins_per_sec,
        report.p50_ms,
        report.p99_ms,
        report.logins,
        report.errors,
        report
            .server_cpu_ms_per_login
            .map(|cpu| format!(", server CPU {cpu:.2} ms/login"))
            .unwrap_or_default(),
        report
            .server_rss_mib
            .zip(report.server_peak_rss_mib)
            .map(|(rss, peak)| format!(", RSS {rss:.0} MiB (peak {peak:.0} MiB)"))
            .unwrap_or_default(),
    );
    for (kind, count) in &report.error_kinds {
        println!("  {count} × {kind}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
