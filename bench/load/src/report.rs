//! The table of `cargo xtask bench`: every figure of the run beside its
//! target, as ratios of figures measured in the same run where the target is
//! a ratio, written as markdown to a file and into the README between its
//! `<!-- bench:begin -->` and `<!-- bench:end -->` markers.
//!
//! It reads what the runs left (the criterion bench's summary and the load
//! driver's reports) and measures nothing itself.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use claimsmith_core::{Clock, SystemClock};

use crate::Report;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `target/bench/in-process.json`, from `cargo bench --bench login`.
    #[arg(long)]
    in_process: PathBuf,
    /// The load run against Claimsmith (seed chain).
    #[arg(long)]
    claimsmith: PathBuf,
    /// The same load run against the node-oidc-provider peer.
    #[arg(long)]
    peer: PathBuf,
    /// The run with 20 plugins loaded at high concurrency, started on a warm
    /// compile cache.
    #[arg(long)]
    twenty: PathBuf,
    /// The command that reproduces the run, quoted under the table.
    #[arg(long, default_value = "cargo xtask bench")]
    command: String,
    #[arg(long)]
    out: PathBuf,
    /// Also replace the table in this file, between the markers.
    #[arg(long)]
    readme: Option<PathBuf>,
}

// What `host/claimsmith/benches/login.rs` writes to in-process.json, read back here. The
// two programs share the JSON, not the types: a crate both depend on would
// make the host's benches depend on this driver, which depends on the host.
#[derive(Debug, Deserialize)]
struct Sampled {
    median_us: f64,
    p99_us: f64,
}

#[derive(Debug, Deserialize)]
struct PluginRow {
    plugin: String,
    language: String,
    size_bytes: u64,
    compile_ms: f64,
    sampled: Sampled,
}

#[derive(Debug, Deserialize)]
struct InProcess {
    seed_chain: Option<Sampled>,
    mint_only: Option<Sampled>,
    /// The demo's chain (JavaScript fetcher, Rust and Python actions).
    #[serde(default)]
    polyglot_chain: Option<Sampled>,
    chains: Vec<(usize, Sampled)>,
    plugins: Vec<PluginRow>,
    /// The write-up's Action as Auth0 runs it, then ported by hand.
    #[serde(default)]
    write_up_action: Vec<PluginRow>,
}

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

pub fn write(args: &Args) -> Result<()> {
    let in_process: Option<InProcess> = read(&args.in_process)?;
    let claimsmith: Option<Report> = read(&args.claimsmith)?;
    let peer: Option<Report> = read(&args.peer)?;
    let twenty: Option<Report> = read(&args.twenty)?;
    let table = render(
        in_process.as_ref(),
        claimsmith.as_ref(),
        peer.as_ref(),
        twenty.as_ref(),
        &args.command,
    );
    std::fs::write(&args.out, &table)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{table}");
    if let Some(readme) = &args.readme {
        let text = std::fs::read_to_string(readme)
            .with_context(|| format!("cannot read {}", readme.display()))?;
        let (before, rest) = text
            .split_once(BEGIN)
            .with_context(|| format!("{} has no {BEGIN} marker", readme.display()))?;
        let (_, after) = rest
            .split_once(END)
            .with_context(|| format!("{} has no {END} marker", readme.display()))?;
        std::fs::write(readme, format!("{before}{BEGIN}\n{table}{END}{after}"))
            .with_context(|| format!("cannot write {}", readme.display()))?;
        println!("wrote the table into {}", readme.display());
    }
    Ok(())
}

/// The file's contents, or `None` when that part was not run.
fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not what this run writes", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn render(
    in_process: Option<&InProcess>,
    claimsmith: Option<&Report>,
    peer: Option<&Report>,
    twenty: Option<&Report>,
    command: &str,
) -> String {
    let mut table = Table(String::new());
    let _ = writeln!(table.0, "Measured by `{command}` on {}.\n", machine());
    let _ = writeln!(table.0, "| figure | measured | target | |");
    let _ = writeln!(table.0, "|---|---|---|---|");
    seed_chain_rows(&mut table, in_process);
    polyglot_chain_row(&mut table, in_process);
    chain_length_row(&mut table, in_process);
    plugin_rows(&mut table, in_process);
    write_up_action_row(&mut table, in_process);
    http_comparison_row(&mut table, claimsmith, peer);
    server_cpu_row(&mut table, claimsmith, peer);
    twenty_plugins_rows(&mut table, twenty);
    table.0
}

/// The markdown table `render` writes, one row per figure.
struct Table(String);

impl Table {
    /// Appends a row; a `met` of `None` leaves its verdict blank.
    fn row(&mut self, figure: &str, measured: String, target: &str, met: Option<bool>) {
        let _ = writeln!(
            self.0,
            "| {figure} | {measured} | {target} | {} |",
            met.map_or("", verdict)
        );
    }

    /// Appends the row of a part that was not run.
    fn not_run(&mut self, figure: &str, target: &str) {
        self.row(figure, "not run".to_owned(), target, None);
    }
}

/// The seed chain's cost over minting alone, and its tail.
fn seed_chain_rows(table: &mut Table, in_process: Option<&InProcess>) {
    let Some(InProcess {
        seed_chain: Some(chain),
        mint_only: Some(mint),
        ..
    }) = in_process
    else {
        table.not_run("seed chain + minting vs minting alone", "≤ 2×");
        return;
    };
    let ratio = chain.median_us / mint.median_us;
    table.row(
        "seed chain (3 Rust plugins) + minting, vs minting alone (median)",
        format!(
            "{:.1} µs vs {:.1} µs: **{ratio:.2}×**",
            chain.median_us, mint.median_us
        ),
        "≤ 2×",
        Some(ratio <= 2.0),
    );
    let tail = chain.p99_us / chain.median_us;
    table.row(
        "seed chain + minting, p99 / p50",
        format!(
            "{:.1} µs / {:.1} µs: {tail:.2}×",
            chain.p99_us, chain.median_us
        ),
        "≤ 3×",
        Some(tail <= 3.0),
    );
}

/// The demo's own chain, as one login in process.
fn polyglot_chain_row(table: &mut Table, in_process: Option<&InProcess>) {
    let figure = "the demo's polyglot chain (JavaScript fetcher, Rust, Python) + minting, in process (median)";
    let Some(chain) = in_process.and_then(|p| p.polyglot_chain.as_ref()) else {
        table.not_run(figure, "≤ 1 ms");
        return;
    };
    table.row(
        figure,
        format!("{:.0} µs, p99 {:.0} µs", chain.median_us, chain.p99_us),
        "≤ 1 ms",
        Some(chain.median_us <= 1000.0),
    );
}

/// The login's cost per action, from chains of several lengths.
fn chain_length_row(table: &mut Table, in_process: Option<&InProcess>) {
    match in_process.map(|p| p.chains.as_slice()) {
        Some([(short, first), .., (long, last)]) if long > short => {
            let slope = (last.median_us - first.median_us) / (*long - *short) as f64;
            let medians = in_process
                .map(|p| {
                    p.chains
                        .iter()
                        .map(|(length, s)| format!("{length}: {:.0} µs", s.median_us))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            // Linear: every middle length within 15% of the line through the ends.
            let linear = in_process.is_some_and(|p| {
                p.chains.iter().all(|(length, s)| {
                    let predicted = first.median_us + slope * (*length - *short) as f64;
                    (s.median_us - predicted).abs() <= 0.15 * predicted
                })
            });
            table.row(
                "login by number of actions (median)",
                format!("{medians}; **{slope:.1} µs per action**"),
                "linear",
                Some(linear),
            );
        }
        _ => table.not_run("login by number of actions", "linear"),
    }
}

/// One call of each plugin in a fresh instance, against its language's limit.
fn plugin_rows(table: &mut Table, in_process: Option<&InProcess>) {
    for plugin in in_process.map(|p| p.plugins.as_slice()).unwrap_or_default() {
        let (language, limit_us) = match plugin.language.as_str() {
            "rust" => ("Rust", 10.0),
            "js" => ("JavaScript", 150.0),
            "python" => ("Python", 600.0),
            other => (other, f64::INFINITY),
        };
        table.row(
            &format!(
                "{} ({language}), one call in a fresh instance",
                plugin.plugin
            ),
            format!(
                "median {:.0} µs, p99 {:.0} µs ({:.1} MiB, compiled in {:.2} s)",
                plugin.sampled.median_us,
                plugin.sampled.p99_us,
                plugin.size_bytes as f64 / (1024.0 * 1024.0),
                plugin.compile_ms / 1e3
            ),
            &format!("median ≤ {limit_us:.0} µs"),
            Some(plugin.sampled.median_us <= limit_us),
        );
    }
}

/// What bringing the write-up's Action unchanged costs per call: built with
/// `require('auth0')` (the SDK's client, bundled) beside the same action
/// ported to `fetch` by hand. Reported, with no target.
fn write_up_action_row(table: &mut Table, in_process: Option<&InProcess>) {
    const FIGURE: &str = "the write-up's Action (JavaScript), one call in a fresh instance: as written, with `require('auth0')`, vs ported to `fetch`";
    let rows = in_process
        .map(|p| p.write_up_action.as_slice())
        .unwrap_or_default();
    let named = |name: &str| rows.iter().find(|row| row.plugin == name);
    let (Some(auth0), Some(ported)) = (named("auth0-management-geo"), named("management-geo"))
    else {
        table.not_run(FIGURE, "reported");
        return;
    };
    let mib = |row: &PluginRow| row.size_bytes as f64 / (1024.0 * 1024.0);
    table.row(
        FIGURE,
        format!(
            "median {:.0} µs vs {:.0} µs: **{:.2}×**; p99 {:.0} µs vs {:.0} µs; {:.1} MiB vs {:.1} MiB",
            auth0.sampled.median_us,
            ported.sampled.median_us,
            auth0.sampled.median_us / ported.sampled.median_us,
            auth0.sampled.p99_us,
            ported.sampled.p99_us,
            mib(auth0),
            mib(ported),
        ),
        "reported",
        None,
    );
}

/// Logins over HTTP, Claimsmith against the node-oidc-provider peer.
fn http_comparison_row(table: &mut Table, claimsmith: Option<&Report>, peer: Option<&Report>) {
    let (Some(ours), Some(theirs)) = (claimsmith, peer) else {
        table.not_run("logins over HTTP vs node-oidc-provider", "≥ 10×");
        return;
    };
    let ratio = ours.logins_per_sec / theirs.logins_per_sec.max(f64::MIN_POSITIVE);
    table.row(
        &format!(
            "complete code-flow logins over HTTP, {} concurrent: Claimsmith vs node-oidc-provider",
            ours.concurrency
        ),
        format!(
            "{:.0}/s vs {:.0}/s: **{ratio:.1}×**; p99 {:.1} ms vs {:.1} ms; errors {} vs {}",
            ours.logins_per_sec,
            theirs.logins_per_sec,
            ours.p99_ms,
            theirs.p99_ms,
            ours.errors,
            theirs.errors
        ),
        "≥ 3× with p99 at or below the peer's, 0 errors",
        Some(
            ratio >= 3.0 && ours.p99_ms <= theirs.p99_ms && ours.errors == 0 && theirs.errors == 0,
        ),
    );
}

/// The service's CPU per login during the HTTP run, with the peer's beside it.
fn server_cpu_row(table: &mut Table, claimsmith: Option<&Report>, peer: Option<&Report>) {
    let Some(ours) = claimsmith else {
        return;
    };
    let line = |report: &Report| {
        format!(
            "{} ms CPU per login, RSS {} MiB, p50 {:.1} ms",
            report
                .server_cpu_ms_per_login
                .map_or_else(|| "?".to_owned(), |cpu| format!("{cpu:.2}")),
            report
                .server_rss_mib
                .map_or_else(|| "?".to_owned(), |rss| format!("{rss:.0}")),
            report.p50_ms
        )
    };
    let peer_line = peer.map(|theirs| format!("; peer: {}", line(theirs)));
    table.row(
        "server CPU per login during that run (the service's process; its development upstream runs in another)",
        format!("{}{}", line(ours), peer_line.unwrap_or_default()),
        "≤ 0.40 ms",
        ours.server_cpu_ms_per_login.map(|cpu| cpu <= 0.40),
    );
}

/// Peak memory and start-up time of the run with 20 plugins loaded.
fn twenty_plugins_rows(table: &mut Table, twenty: Option<&Report>) {
    let Some(run) = twenty else {
        table.not_run("20 plugins: memory and start-up", "≤ 256 MiB, ≤ 200 ms");
        return;
    };
    table.row(
        &format!(
            "peak RSS, 20 plugins loaded, {} concurrent logins",
            run.concurrency
        ),
        format!(
            "{} MiB ({:.0} logins/s, {} errors)",
            run.server_peak_rss_mib
                .map_or_else(|| "?".to_owned(), |rss| format!("{rss:.0}")),
            run.logins_per_sec,
            run.errors
        ),
        "≤ 256 MiB",
        run.server_peak_rss_mib.map(|rss| rss <= 256.0),
    );
    table.row(
        "start-up to first answer, 20 plugins, warm compile cache",
        run.ready_after_ms
            .map_or_else(|| "?".to_owned(), |ms| format!("{ms:.0} ms")),
        "≤ 200 ms",
        run.ready_after_ms.map(|ms| ms <= 200.0),
    );
}

/// Cores, CPU model and memory of this machine, and the date.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("an unknown CPU", |(_, model)| model.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib =
        crate::kib_field(&meminfo, "MemTotal:").map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    format!(
        "{cores} cores ({model}), {memory_gib:.0} GiB, {}; absolute times drift between runs on a shared machine, ratios of one run hold",
        today()
    )
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let now = claimsmith_core::rfc3339(SystemClock.now());
    now.split('T').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(median_us: f64) -> Sampled {
        Sampled {
            median_us,
            p99_us: median_us * 2.0,
        }
    }

    fn in_process(chain_us: f64, mint_us: f64) -> InProcess {
        InProcess {
            seed_chain: Some(sampled(chain_us)),
            mint_only: Some(sampled(mint_us)),
            polyglot_chain: None,
            chains: vec![(1, sampled(20.0)), (5, sampled(60.0)), (20, sampled(210.0))],
            plugins: Vec::new(),
            write_up_action: Vec::new(),
        }
    }

    fn row<'a>(table: &'a str, figure: &str) -> &'a str {
        table
            .lines()
            .find(|line| line.starts_with(&format!("| {figure}")))
            .unwrap_or_else(|| panic!("no row {figure:?} in\n{table}"))
    }

    #[test]
    fn a_target_is_met_only_by_a_figure_within_it() {
        let within = render(Some(&in_process(190.0, 100.0)), None, None, None, "x");
        let beyond = render(Some(&in_process(210.0, 100.0)), None, None, None, "x");
        let figure = "seed chain (3 Rust plugins)";
        assert!(row(&within, figure).ends_with("| met |"), "{within}");
        assert!(
            row(&beyond, figure).ends_with("| **not met** |"),
            "{beyond}"
        );
        assert!(row(&beyond, figure).contains("**2.10×**"), "{beyond}");
    }

    #[test]
    fn a_part_not_run_says_so_and_meets_nothing() {
        let table = render(None, None, None, None, "x");
        for line in table.lines().skip(4) {
            assert!(line.contains("not run"), "{line}");
            assert!(!line.contains("met"), "{line}");
        }
    }

    #[test]
    fn the_write_up_action_reads_as_written_over_ported() {
        let built = |plugin: &str, median_us: f64| PluginRow {
            plugin: plugin.to_owned(),
            language: "js".to_owned(),
            size_bytes: 12 * 1024 * 1024,
            compile_ms: 1.0,
            sampled: sampled(median_us),
        };
        let mut figures = in_process(1.0, 1.0);
        figures.write_up_action = vec![
            built("management-geo", 400.0),
            built("auth0-management-geo", 500.0),
        ];
        let table = render(Some(&figures), None, None, None, "x");
        let line = row(&table, "the write-up's Action");
        assert!(
            line.contains("median 500 µs vs 400 µs: **1.25×**"),
            "{line}"
        );
        figures.write_up_action.pop();
        let table = render(Some(&figures), None, None, None, "x");
        assert!(
            row(&table, "the write-up's Action").contains("not run"),
            "{table}"
        );
    }

    #[test]
    fn the_cost_per_action_is_the_slope_and_a_bend_is_not_linear() {
        let straight = render(Some(&in_process(1.0, 1.0)), None, None, None, "x");
        assert!(row(&straight, "login by number of actions").contains("10.0 µs per action"));
        assert!(row(&straight, "login by number of actions").ends_with("| met |"));
        let mut bent = in_process(1.0, 1.0);
        bent.chains[1].1 = sampled(120.0);
        let bent = render(Some(&bent), None, None, None, "x");
        assert!(
            row(&bent, "login by number of actions").ends_with("| **not met** |"),
            "{bent}"
        );
    }
}
