//! The `claimsmith` command: parses arguments, sets up logging, and hands
//! each subcommand to the library. Exit status: 0 success, 1 a login that
//! did not mint (denied or failed), 2 bad config, input or plugin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use claimsmith_authoring::scaffold::SourceLanguage;
use claimsmith_capabilities::http::OutboundHttp;
use claimsmith_config::Config;
use claimsmith_core::{Clock, SystemClock};
use claimsmith_golden::replay::{CannedHttp, RecordedLogin};
use claimsmith_golden::{SuiteOptions, run_suite};
use claimsmith_pipeline::{LoginEnd, LoginReport, Pipeline, RunOptions, StepStatus};

#[derive(Parser)]
#[command(
    name = "claimsmith",
    version,
    about = "Runs the post-login step of an identity platform as WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Shows each key's kid, algorithm, state (next, current, previous,
    /// retired) and when it signs from.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Adds a key of the configured algorithm, published at once, signing
    /// after the overlap; deletes retired keys.
    Rotate {
        #[arg(long)]
        config: PathBuf,
        /// Seconds between publishing and signing; default `[keys]
        /// rotation_overlap_secs`.
        #[arg(long)]
        overlap_secs: Option<u64>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole chain for one recorded login and prints the tokens.
    Run {
        /// The configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The recorded login (YAML or JSON): upstream tokens and claims,
        /// canned HTTP.
        #[arg(long)]
        input: PathBuf,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Checks plugins against golden cases: YAML files, or folders searched
    /// recursively. Exit status 0 all passed, 1 a case failed, 2 a case could
    /// not be read.
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write what the failing cases produced into their `expect` sections.
        #[arg(long)]
        bless: bool,
        /// Write what every case produced into its `expect` section.
        #[arg(long)]
        bless_all: bool,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Run each case once per language folder in this folder of builds
        /// (as `claimsmith build --out DIR` lays them out), every plugin
        /// replaced by its build in that language. A missing build fails.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["bless", "bless_all"])]
        builds: Option<PathBuf>,
        /// Cache compiled plugins in this folder (one a CI job keeps between
        /// runs, say) instead of the first case config's data directory, or
        /// `~/.cache/claimsmith/compile-cache` for cases without a config.
        #[arg(long, value_name = "DIR")]
        compile_cache: Option<PathBuf>,
    },
    /// Runs the login service: OIDC provider to the apps, OIDC client to the
    /// upstream providers, the plugin chain on every login.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Starts the service with a built-in DEVELOPMENT upstream provider, signs
    /// in once as an app would, prints the tokens, and keeps serving.
    Demo {
        #[arg(long, default_value = "examples/demo/claimsmith.toml")]
        config: PathBuf,
    },
    /// Runs only the built-in DEVELOPMENT upstream provider of a demo
    /// config (its first connection), for `serve` on the same config to sign
    /// in at. Never in production.
    DevUpstream {
        #[arg(long, default_value = "examples/demo/claimsmith.toml")]
        config: PathBuf,
    },
    /// Checks a configuration and loads every plugin in it, then exits.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Prints the JWKS document that verifies the tokens this config's
    /// database signs (every published key).
    Jwks {
        #[arg(long)]
        config: PathBuf,
    },
    /// The signing keys in the config's database, shared by every host.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Writes the login of audit row LOG_ID, kept because a plugin with
    /// `capture = true` ran in it, as a golden case of the whole chain whose
    /// `expect` is what the live run gave.
    Capture {
        /// The audit row's id (the Management API's `log_id`).
        log_id: i64,
        /// The configuration of the deployment's database; the case runs
        /// its chain.
        #[arg(long)]
        config: PathBuf,
        /// The case file to write, naming the config relative to it
        /// (default: standard output, naming it by its absolute path).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The versions of `source = "store"` plugins, through a deployment's
    /// Management API: push, list, deploy, rollback.
    Plugins {
        #[command(subcommand)]
        action: crate::plugins_cli::PluginsAction,
    },
    /// Writes a new plugin project on the SDK of its language: the source,
    /// its build file, a golden case that passes as generated, a README.
    New {
        kind: PluginKind,
        /// The plugin's name (lower case, digits and `-`).
        name: String,
        #[arg(long, value_enum)]
        lang: LanguageArg,
        /// Where to write it (default: a folder named after the plugin).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Tells what a compiled plugin is: its world, imports, exports, size,
    /// sha256, source language and compile time. Refuses a component that is
    /// not a Claimsmith plugin.
    Inspect { wasm: PathBuf },
    /// Builds plugin projects (Rust, JavaScript, Python) into components at
    /// `<out>/<language>/<name>.wasm`. Each path is a project or a folder
    /// searched for projects.
    Build {
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        /// Where the components land.
        #[arg(long, default_value = "target/plugins")]
        out: PathBuf,
        /// Where the JavaScript and Python toolchains, npm dependencies and
        /// the build cache are kept (default: `$CLAIMSMITH_TOOLCHAINS`, else
        /// `~/.cache/claimsmith/toolchains`, shared by every project).
        #[arg(long)]
        toolchains: Option<PathBuf>,
        /// cargo's target dir for Rust projects (default: cargo's choice).
        #[arg(long)]
        cargo_target_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PluginKind {
    /// A post-login action (`onExecutePostLogin`).
    Action,
    /// A profile fetcher (`fetchUserProfile`).
    ProfileFetcher,
    /// A credentials-exchange action (`onExecuteCredentialsExchange`), run
    /// on machine clients' tokens for `[[apis]]`.
    CredentialsExchange,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LanguageArg {
    Rust,
    Js,
    Ts,
    Python,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The test runner's output is its report; plugin loading is noise there.
    let default_filter = match cli.command {
        Command::Test { .. } => "warn",
        _ => "warn,claimsmith=info",
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_owned());
    // `serve` and `demo` log as their config says; the whole config is read
    // (and its mistakes reported) after logging is set up.
    let telemetry = match &cli.command {
        Command::Serve { config } | Command::Demo { config } => {
            claimsmith_config::TelemetrySettings::peek(config)
        }
        _ => claimsmith_config::TelemetrySettings::default(),
    };
    let _telemetry = match crate::telemetry::init(&filter, &telemetry) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: cannot set up logging: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            config,
            input,
            json,
        } => run_recorded_login(config, input, json).await,
        Command::Test {
            paths,
            bless,
            bless_all,
            json,
            junit,
            builds,
            compile_cache,
        } => {
            use std::io::IsTerminal;
            let options = SuiteOptions {
                bless,
                bless_all,
                color: !json
                    && std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none(),
                json,
                junit,
                builds,
                compile_cache,
            };
            run_golden_cases(paths, options).await
        }
        Command::Serve { config } => serve(config).await,
        #[cfg(feature = "demo")]
        Command::Demo { config } => demo(config).await,
        #[cfg(feature = "demo")]
        Command::DevUpstream { config } => dev_upstream(config).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } | Command::DevUpstream { .. } => anyhow::bail!(
            "this build has no development provider: build with `--features demo` \
             (`cargo xtask demo` does)"
        ),
        Command::Check { config } => check(config),
        Command::New {
            kind,
            name,
            lang,
            dir,
        } => new_project(kind, name, lang, dir),
        Command::Inspect { wasm } => inspect(wasm),
        Command::Build {
            paths,
            out,
            toolchains,
            cargo_target_dir,
        } => {
            let options = claimsmith_authoring::build::BuildOptions {
                out_dir: out,
                toolchains_dir: toolchains
                    .unwrap_or_else(claimsmith_authoring::build::default_toolchains_dir),
                cargo_target_dir,
            };
            build(paths, options)
        }
        Command::Jwks { config } => print_jwks(config).await,
        Command::Keys {
            action: KeysAction::List { config },
        } => list_keys(config).await,
        Command::Keys {
            action:
                KeysAction::Rotate {
                    config: file,
                    overlap_secs,
                },
        } => rotate_key(file, overlap_secs).await,
        Command::Capture {
            log_id,
            config,
            out,
        } => write_capture(log_id, config, out).await,
        Command::Plugins { action } => {
            crate::plugins_cli::execute(action).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `claimsmith run`: one recorded login through the whole chain, its HTTP
/// answered from the recording.
async fn run_recorded_login(
    config: PathBuf,
    input: PathBuf,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let pipeline = start(&config)?;
    eprintln!(
        "note: the tokens are signed with a throwaway key: no deployment's JWKS verifies them"
    );
    let recorded = RecordedLogin::load(&input).map_err(anyhow::Error::msg)?;
    let canned = recorded
        .http
        .map(|exchanges| Arc::new(CannedHttp::new(exchanges)));
    let options = RunOptions {
        interceptor: canned.clone().map(|c| c as _),
        now: recorded.now,
        log_sink: None,
        // `claimsmith run` has no browser: a redirect shows where it goes.
        redirect_state: Some("run-state".to_owned()),
        ..RunOptions::default()
    };
    let report = pipeline.run(&recorded.login, &options).await;
    if json {
        println!("{:#}", report_json(&report));
    } else {
        print_report(&report);
    }
    Ok(if matches!(report.outcome, Ok(LoginEnd::Minted(_))) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `claimsmith test`: the golden cases under `paths`.
async fn run_golden_cases(paths: Vec<PathBuf>, options: SuiteOptions) -> anyhow::Result<ExitCode> {
    let summary = run_suite(&paths, &options, &mut std::io::stdout().lock()).await?;
    Ok(ExitCode::from(summary.exit_code()))
}

/// `claimsmith serve`: the login service, and the admin listener when
/// configured.
async fn serve(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = Config::load(&config)?;
    let listen = config.server.listen;
    let issuer = config.issuer.clone();
    let admin = config.admin;
    let settings = config.server.clone();
    let service = claimsmith_server::Service::start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    if let Some(admin) = admin {
        let admin_listener = tokio::net::TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("cannot listen on {} ([admin] listen)", admin.listen))?;
        let router = claimsmith_server::admin::router(service.clone());
        tokio::spawn(async move {
            if let Err(error) =
                claimsmith_server::serve_router(router, settings, admin_listener).await
            {
                tracing::error!(%error, "the admin listener stopped");
            }
        });
        tracing::info!(listen = %admin.listen, "admin listener: /healthz /readyz /metrics");
    }
    tracing::info!(%listen, issuer, "serving");
    claimsmith_server::serve(service, listener).await?;
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith demo`.
#[cfg(feature = "demo")]
async fn demo(config: PathBuf) -> anyhow::Result<ExitCode> {
    crate::demo::run(Config::load(&config)?).await?;
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith dev-upstream`.
#[cfg(feature = "demo")]
async fn dev_upstream(config: PathBuf) -> anyhow::Result<ExitCode> {
    crate::demo::run_upstream(Config::load(&config)?).await?;
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith check`: loads every plugin of a config and prints its pins.
fn check(config: PathBuf) -> anyhow::Result<ExitCode> {
    let pipeline = start(&config)?;
    let config = pipeline.config();
    println!(
        "{}: ok ({} plugins, {} connections, {} clients, {} actions, {} credentials-exchange actions)",
        config.file.display(),
        config.plugins.len(),
        config.connections.len(),
        config.clients.len(),
        config.actions.len(),
        config.credentials_exchange.len()
    );
    // What a config pins with `sha256 = "..."`.
    for (name, plugin) in pipeline.plugins() {
        println!("  {name}: sha256 {}", plugin.sha256());
    }
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith new`: a plugin project from its template.
fn new_project(
    kind: PluginKind,
    name: String,
    lang: LanguageArg,
    dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let world = match kind {
        PluginKind::Action => claimsmith_engine::World::PostLoginAction,
        PluginKind::ProfileFetcher => claimsmith_engine::World::ProfileFetcher,
        PluginKind::CredentialsExchange => claimsmith_engine::World::CredentialsExchange,
    };
    let language = match lang {
        LanguageArg::Rust => SourceLanguage::Rust,
        LanguageArg::Js => SourceLanguage::JavaScript,
        LanguageArg::Ts => SourceLanguage::TypeScript,
        LanguageArg::Python => SourceLanguage::Python,
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    for file in claimsmith_authoring::scaffold::create(world, language, &name, &dir)? {
        println!("wrote {}", file.display());
    }
    println!(
        "\nnext: cd {} && claimsmith build . && claimsmith test goldens",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith inspect`: what a compiled component is.
fn inspect(wasm: PathBuf) -> anyhow::Result<ExitCode> {
    let inspection = claimsmith_authoring::inspect::inspect(&wasm)?;
    println!("{}", wasm.display());
    println!("  world:        {}", inspection.world);
    println!(
        "  language:     {}",
        inspection.language.as_deref().unwrap_or("(not recorded)")
    );
    println!(
        "  size:         {} bytes ({:.1} MiB)",
        inspection.size_bytes,
        inspection.size_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("  sha256:       {}", inspection.sha256);
    println!(
        "  compile time: {:.0} ms (Cranelift, this machine)",
        inspection.compile_time.as_secs_f64() * 1000.0
    );
    println!("  exports:      {}", inspection.exports.join(", "));
    println!("  imports:");
    for import in &inspection.imports {
        println!("    {import}");
    }
    println!("  producers:");
    for producer in &inspection.producers {
        println!("    {producer}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith build`: every plugin project under `paths`, as many at once
/// as there are cores.
fn build(
    paths: Vec<PathBuf>,
    options: claimsmith_authoring::build::BuildOptions,
) -> anyhow::Result<ExitCode> {
    let projects = claimsmith_authoring::build::discover(&paths)?;
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let report = |project: &claimsmith_authoring::build::Project,
                  built: &anyhow::Result<claimsmith_authoring::build::Built>| {
        let Ok(built) = built else {
            return;
        };
        let label = format!("{} ({})", project.name, project.language);
        let how = if built.up_to_date {
            "up to date".to_owned()
        } else {
            format!("built in {:.1} s", built.duration.as_secs_f64())
        };
        eprintln!("{label:<36} {how:<16} {}", built.component.display());
    };
    claimsmith_authoring::build::build_all(&projects, &options, jobs, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith jwks`: the JWKS the service publishes.
async fn print_jwks(config: PathBuf) -> anyhow::Result<ExitCode> {
    let (_, ring) = key_vault(&config).await?;
    println!("{}", serde_json::to_string_pretty(&ring.jwks())?);
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith keys list`.
async fn list_keys(config: PathBuf) -> anyhow::Result<ExitCode> {
    let (vault, _) = key_vault(&config).await?;
    println!("{:<44} {:<6} {:<9} signs from", "kid", "alg", "state");
    for key in vault.list(SystemClock.now()).await? {
        println!(
            "{:<44} {:<6} {:<9} {}",
            key.kid,
            key.algorithm,
            key.state.as_str(),
            // The first key of a deployment signs from the start.
            if key.signs_from == 0 {
                "the start".to_owned()
            } else {
                claimsmith_core::rfc3339(key.signs_from)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith keys rotate`: adds the next signing key.
async fn rotate_key(file: PathBuf, overlap_secs: Option<u64>) -> anyhow::Result<ExitCode> {
    let config = Config::load(&file)?;
    let (vault, _) = key_vault(&file).await?;
    let overlap = overlap_secs.unwrap_or(config.keys.rotation_overlap_secs);
    let now = SystemClock.now();
    let kid = vault.rotate(config.tokens.algorithm, now, overlap).await?;
    println!(
        "added {kid} ({}): published now, signs from {}",
        config.tokens.algorithm,
        claimsmith_core::rfc3339(now + overlap)
    );
    Ok(ExitCode::SUCCESS)
}

/// `claimsmith capture`: the kept login of audit row `log_id` as a golden
/// case, written to `out` or printed.
async fn write_capture(
    log_id: i64,
    file: PathBuf,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(&file)?;
    let store = open_store(&config).await?;
    let kept = store.login_capture(log_id).await?.with_context(|| {
        format!(
            "login {log_id} was not captured: no plugin of its chain had `capture = true`, \
             or its audit row was pruned"
        )
    })?;
    let config_path = std::path::absolute(&file)?;
    // A case names its config relative to the case file.
    let named = match out.as_deref().and_then(std::path::Path::parent) {
        Some(folder) => {
            pathdiff::diff_paths(&config_path, std::path::absolute(folder)?).unwrap_or(config_path)
        }
        None => config_path,
    };
    let case =
        claimsmith_golden::capture::case(log_id, &kept, &named).map_err(anyhow::Error::msg)?;
    match out {
        Some(out) => {
            std::fs::write(&out, case)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("wrote the case of login {log_id} to {}", out.display());
        }
        None => print!("{case}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn open_store(config: &Config) -> anyhow::Result<claimsmith_store::Store> {
    claimsmith_store::Store::open(&config.storage.database, config.storage.synchronous)
        .await
        .context("cannot open the database")
}

/// The keys of the database `config` names, and its key ring (made on an
/// empty database, as `serve` would).
async fn key_vault(
    config: &std::path::Path,
) -> anyhow::Result<(claimsmith_keys::KeyVault, claimsmith_keys::KeyRing)> {
    let config = Config::load(config)?;
    let store = open_store(&config).await?;
    let key_encryption_key = claimsmith_keys::key_encryption_key(&config)?;
    let vault = claimsmith_keys::KeyVault::new(
        store,
        &key_encryption_key,
        claimsmith_keys::retire_after(&config),
        Arc::new(SystemClock),
    );
    let ring = vault
        .open_ring(config.tokens.algorithm, &config.data_dir.join("keys"))
        .await?;
    Ok((vault, ring))
}

fn start(config: &std::path::Path) -> anyhow::Result<Pipeline> {
    let config = Config::load(config)?;
    let http = OutboundHttp::new().context("cannot set up outbound HTTP")?;
    Pipeline::new(config, http).context("cannot start the pipeline")
}

fn print_report(report: &LoginReport) {
    println!(
        "{:<24} {:<18} {:>12} {:>14}  status",
        "step", "kind", "duration", "fuel"
    );
    for step in &report.steps {
        let kind = serde_json::to_value(step.kind).unwrap_or(Value::Null);
        let status = match &step.status {
            StepStatus::Succeeded => "ok".to_owned(),
            StepStatus::Denied { reason } => format!("denied: {reason}"),
            StepStatus::Skipped { error } => format!("skipped: {error}"),
            StepStatus::Failed { error } => format!("failed: {error}"),
        };
        println!(
            "{:<24} {:<18} {:>9.3} ms {:>14}  {status}",
            step.name,
            kind.as_str().unwrap_or("?"),
            step.duration.as_secs_f64() * 1000.0,
            step.fuel_consumed
                .map_or_else(String::new, |f| f.to_string()),
        );
    }
    match &report.outcome {
        Ok(LoginEnd::Redirected(redirected)) => {
            println!(
                "\n`{}` sends the user to {}: the login goes on at /continue",
                redirected.plugin, redirected.to
            );
        }
        Ok(LoginEnd::Minted(minted)) => {
            println!("\nminted for {}", minted.user.user_id);
            println!(
                "\naccess token:\n{:#}",
                decode_jwt(&minted.tokens.access_token)
            );
            println!("\nid token:\n{:#}", decode_jwt(&minted.tokens.id_token));
        }
        Err(failure) => println!("\nlogin failed: {failure}"),
    }
}

fn report_json(report: &LoginReport) -> Value {
    let outcome = match &report.outcome {
        Ok(LoginEnd::Redirected(redirected)) => json!({
            "redirected": { "plugin": redirected.plugin, "url": redirected.to }
        }),
        Ok(LoginEnd::Minted(minted)) => json!({
            "minted": {
                "user": minted.user,
                "scopes": minted.scopes,
                "access_token": decode_jwt(&minted.tokens.access_token),
                "id_token": decode_jwt(&minted.tokens.id_token),
            }
        }),
        Err(failure) => json!({ "failed": failure.to_string() }),
    };
    json!({ "steps": report.steps, "outcome": outcome })
}

/// The header and claims of a compact JWT, for display (not verification).
fn decode_jwt(token: &str) -> Value {
    let decode = |part: Option<&str>| -> Value {
        part.and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null)
    };
    let mut parts = token.split('.');
    json!({ "header": decode(parts.next()), "claims": decode(parts.next()) })
}
