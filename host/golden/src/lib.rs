//! Golden cases: `claimsmith test` checks that plugins still turn recorded
//! inputs into the expected profile, claims, denial or error.
//!
//! Owns the case format (YAML), running cases on one shared engine in
//! parallel, comparing outcomes with a readable diff, and `--bless`. A case
//! runs through the real pipeline with its plugins' HTTP answered from the
//! case's exchanges; nothing here reaches the network or mints with a real key.
//! [`replay`] is the recorded-login format (`claimsmith run --input`) and the
//! canned-HTTP matcher both use. It must not serve HTTP or open a store.

pub mod capture;
mod exchange;
mod redaction;
pub mod replay;

pub use exchange::{RecordedClient, RecordedTokenRequest};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::redaction::Redaction;
use crate::replay::{CannedHttp, RecordedLogin, parse_yaml};
use claimsmith_capabilities::http::{HttpPolicy, OutboundHttp};
use claimsmith_config::{
    ActionConfig, ClientConfig, Config, ConnectionConfig, KeySettings, OnError, SecretsReplaced,
    ServerSettings, StorageSettings, TokenSettings,
};
use claimsmith_core::{Clock as _, SecretValue};
use claimsmith_engine::{
    Engine, EngineSettings, Limits, PluginError, PluginSpec, World, json_kind,
};
use claimsmith_pipeline::{LoginEnd, LoginFailure, LoginReport, Pipeline, RunOptions, StepStatus};
use claimsmith_tokens::{SigningAlgorithm, SigningKey};

/// Claims that differ on every run; compared as placeholders.
const RANDOM_CLAIMS: &[&str] = &["jti", "at_hash"];
/// Claims that follow the clock: placeholders too, unless the case pins
/// `now`, when they are compared exactly (a changed lifetime shows).
const TIME_CLAIMS: &[&str] = &["iat", "exp", "nbf", "auth_time"];

/// One case, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in the output; the file's name when absent.
    pub name: Option<String>,
    /// A config (relative to the case file). With `plugin`, that one plugin
    /// runs with its grants from the config; without, the whole chain runs.
    pub config: Option<PathBuf>,
    /// The plugin to run, by its name in `config`.
    pub plugin: Option<String>,
    /// Or a compiled plugin (relative to the case file), with `world`.
    pub wasm: Option<PathBuf>,
    pub world: Option<World>,
    /// Origins granted to a `wasm` plugin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Where a `wasm` post-login action may send the user (`api.redirect`).
    #[serde(default)]
    pub redirect_origins: Vec<String>,
    /// The connection options given to a `wasm` profile fetcher.
    #[serde(default)]
    pub options: Map<String, Value>,
    /// The plugin's secrets for this case (replacing those of the config).
    pub secrets: Option<BTreeMap<String, String>>,
    /// The most fuel the case's plugins may use together.
    pub max_fuel: Option<u64>,
    /// With `--builds`, the language folders the case runs in (all when
    /// absent): a case about code that exists in one language only, such
    /// as an Auth0 original in JavaScript, names it.
    pub languages: Option<Vec<String>>,
    /// A login, in the shape of `claimsmith run --input`; or, for the
    /// credentials-exchange world, a machine client's token request.
    pub input: CaseInput,
    /// What the case must produce. Each section given is compared whole.
    pub expect: Map<String, Value>,
}

/// What a case runs: a login, or a machine client's token request (told
/// apart by its `client`, which a login names as `client_id`).
#[derive(Debug, Clone)]
pub enum CaseInput {
    Login(Box<RecordedLogin>),
    TokenRequest(Box<RecordedTokenRequest>),
}

impl<'de> Deserialize<'de> for CaseInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = Value::deserialize(deserializer)?;
        if value.get("client").is_some() {
            replay::from_value_with_path(value, None)
                .map(|request| CaseInput::TokenRequest(Box::new(request)))
        } else {
            RecordedLogin::deserialize(value)
                .map(|login| CaseInput::Login(Box::new(login)))
                .map_err(D::Error::custom)
        }
    }
}

/// A token request runs credentials-exchange plugins, a login the others;
/// a whole chain takes either.
fn check_input_kind(input: &CaseInput, kind: CaseKind) -> Result<(), String> {
    let is_token_request = matches!(input, CaseInput::TokenRequest(_));
    if is_token_request == (kind == CaseKind::CredentialsExchange) || kind == CaseKind::Chain {
        return Ok(());
    }
    Err(if is_token_request {
        "input: a token request (`client`, `audience`, ...) is the input of a credentials-exchange plugin's case"
    } else {
        "input: a credentials-exchange plugin's case gives a token request (`client`, `audience`, ...)"
    }
    .to_owned())
}

impl CaseInput {
    /// Pins the clock at `now` unless the input pins it already; whether
    /// it did.
    fn pin_clock(&mut self, now: u64) -> bool {
        let pinned = match self {
            CaseInput::Login(login) => &mut login.now,
            CaseInput::TokenRequest(request) => &mut request.now,
        };
        let was_pinned = pinned.is_some();
        pinned.get_or_insert(now);
        was_pinned
    }

    /// The canned answers to the plugins' HTTP.
    pub fn http(&self) -> Option<&Vec<replay::Exchange>> {
        match self {
            CaseInput::Login(login) => login.http.as_ref(),
            CaseInput::TokenRequest(request) => request.http.as_ref(),
        }
    }

    /// The pinned clock, if any.
    pub fn now(&self) -> Option<u64> {
        match self {
            CaseInput::Login(login) => login.now,
            CaseInput::TokenRequest(request) => request.now,
        }
    }

    /// The login, or why a case of `kind` needs one.
    fn login(&self, kind: &str) -> Result<&RecordedLogin, String> {
        match self {
            CaseInput::Login(login) => Ok(login),
            CaseInput::TokenRequest(_) => Err(format!(
                "a {kind} case's input is a login (`connection`, `client_id`, ...), not a token request"
            )),
        }
    }
}

/// How a run of the suite is configured.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    /// Rewrite the expectations of failing cases with what they produced.
    pub bless: bool,
    /// Rewrite the expectations of every case.
    pub bless_all: bool,
    /// Colour the diffs.
    pub color: bool,
    /// Print JSON results instead of text.
    pub json: bool,
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Run every case once per language folder here (`rust/`, `js/`,
    /// `python/`, as `claimsmith build` lays them out), each plugin's wasm
    /// replaced by the file of the same name in that folder.
    pub builds: Option<PathBuf>,
    /// Where compiled plugins are cached, instead of the cache of the first
    /// case's config or, without one, the user's.
    pub compile_cache: Option<PathBuf>,
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// The language of the builds the case ran against, with `--builds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub passed: bool,
    pub duration_ms: f64,
    pub fuel: u64,
    /// Why it failed, as shown to the author (diff included).
    pub failures: Vec<String>,
    /// What the author should see even when the case passed: requests the
    /// plugin's HTTP policy refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The outcome the case produced, as its `expect` section would say it.
    #[serde(skip)]
    pub actual: Map<String, Value>,
}

/// The whole run.
#[derive(Debug)]
pub struct Summary {
    pub results: Vec<CaseResult>,
    /// Files that could not be read as cases.
    pub unreadable: Vec<String>,
}

impl Summary {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// 0 all passed, 1 a case failed, 2 a case could not be read.
    pub fn exit_code(&self) -> u8 {
        if !self.unreadable.is_empty() {
            2
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }
}

/// Finds the cases under `paths`, runs them, writes the report to `out`.
pub async fn run_suite(
    paths: &[PathBuf],
    options: &SuiteOptions,
    out: &mut dyn Write,
) -> std::io::Result<Summary> {
    let mut unreadable = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        collect_case_files(path, &mut files, &mut unreadable);
    }
    if files.is_empty() && unreadable.is_empty() {
        unreadable.push(format!(
            "no case found in {} (cases are *.yaml or *.yml files)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut cases = Vec::new();
    for file in files {
        match load_case(&file) {
            Ok(prepared) => cases.push(prepared),
            Err(error) => unreadable.push(error),
        }
    }
    if let Some(builds) = &options.builds {
        match per_language(cases, builds) {
            Ok(each) => cases = each,
            Err(error) => {
                unreadable.push(error);
                cases = Vec::new();
            }
        }
    }

    let results = match build_engine(&cases, options.compile_cache.as_deref()) {
        Ok(engine) => run_cases(engine, cases).await,
        Err(error) => {
            unreadable.push(error);
            Vec::new()
        }
    };
    let summary = Summary {
        results,
        unreadable,
    };
    if options.bless || options.bless_all {
        // With --json, stdout carries the JSON document alone.
        if options.json {
            bless(&summary, options.bless_all, &mut std::io::stderr().lock())?;
        } else {
            bless(&summary, options.bless_all, out)?;
        }
    }
    report(&summary, options, out)?;
    if let Some(path) = &options.junit {
        std::fs::write(path, junit_xml(&summary))?;
    }
    Ok(summary)
}

fn collect_case_files(path: &Path, files: &mut Vec<PathBuf>, unreadable: &mut Vec<String>) {
    if path.is_file() {
        files.push(path.to_owned());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) => {
            unreadable.push(format!("{}: {error}", path.display()));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let is_case = child
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if child.is_dir() {
            collect_case_files(&child, files, unreadable);
        } else if is_case {
            files.push(child);
        }
    }
}

/// A case read and resolved: its config built, ready to run.
#[derive(Clone)]
struct PreparedCase {
    file: PathBuf,
    case: Case,
    config: Config,
    kind: CaseKind,
    /// The language whose builds the plugins were replaced by (`--builds`).
    language: Option<String>,
    /// Why this case cannot run as prepared (a language build is missing).
    broken: Option<String>,
    /// The plugin the case is about (`plugin:` or `wasm:`): it must run.
    under_test: Option<String>,
}

/// Each case once per language folder under `builds` (those it names in
/// `languages`, if it does), its plugins' wasm files replaced by that
/// language's builds. A missing build fails the case: one set of cases holds
/// every language to the same behaviour.
fn per_language(cases: Vec<PreparedCase>, builds: &Path) -> Result<Vec<PreparedCase>, String> {
    let mut languages: Vec<String> = std::fs::read_dir(builds)
        .map_err(|e| format!("{}: {e}", builds.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .filter(|name| !name.starts_with('.'))
        .collect();
    languages.sort();
    if languages.is_empty() {
        return Err(format!(
            "{}: no language folders of builds (run `claimsmith build --out {}`)",
            builds.display(),
            builds.display()
        ));
    }
    let mut each = Vec::new();
    for case in cases {
        let wanted = |language: &String| {
            case.case
                .languages
                .as_ref()
                .is_none_or(|only| only.contains(language))
        };
        for language in languages.iter().filter(|language| wanted(language)) {
            let mut variant = case.clone();
            variant.language = Some(language.clone());
            for (name, spec) in &mut variant.config.plugins {
                let Some(file_name) = spec.path.file_name() else {
                    variant.broken.get_or_insert_with(|| {
                        format!("plugin `{name}` has no file name to look up in {language}")
                    });
                    continue;
                };
                let build = builds.join(language).join(file_name);
                if !build.exists() && variant.broken.is_none() {
                    variant.broken = Some(format!(
                        "no {language} build of plugin `{name}`: {} is missing",
                        build.display()
                    ));
                }
                spec.path = build;
            }
            each.push(variant);
        }
    }
    Ok(each)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseKind {
    ProfileFetcher,
    Action,
    CredentialsExchange,
    Chain,
}

fn load_case(file: &Path) -> Result<PreparedCase, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let case: Case = parse_yaml(file, &text)?;
    let invalid = |why: &str| format!("{}: {why}", file.display());
    if case.expect.is_empty() {
        return Err(invalid("`expect` must name at least one section"));
    }
    for (key, section) in &case.expect {
        if !EXPECT_SECTIONS.contains(&key.as_str()) {
            return Err(invalid(&format!(
                "expect.{key}: unknown section (expected one of {})",
                EXPECT_SECTIONS.join(", ")
            )));
        }
        check_expect_section(key, section).map_err(|why| invalid(&format!("expect.{key}{why}")))?;
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let (config, kind) = match (&case.config, &case.plugin, &case.wasm) {
        (Some(config), plugin, None) => {
            // The case's own secrets replace the config's, which are then
            // not read: CI has no production secrets, and needs none.
            let replaced = match (&case.secrets, plugin) {
                (None, _) => SecretsReplaced::None,
                (Some(_), Some(plugin)) => SecretsReplaced::Of(plugin.clone()),
                (Some(_), None) => SecretsReplaced::All,
            };
            let config = Config::load_replacing_secrets(&base.join(config), &replaced)
                .map_err(|e| e.to_string())?;
            focus_config(config, &case, plugin.as_deref()).map_err(|why| invalid(&why))?
        }
        (None, None, Some(wasm)) => {
            let world = case.world.ok_or_else(|| {
                invalid(
                    "`wasm` needs `world` (profile-fetcher, post-login-action or credentials-exchange)",
                )
            })?;
            standalone_config(file, &base.join(wasm), world, &case).map_err(|why| invalid(&why))?
        }
        _ => {
            return Err(invalid(
                "give either `config` (with an optional `plugin`) or `wasm` with `world`",
            ));
        }
    };
    check_input_kind(&case.input, kind).map_err(|why| invalid(&why))?;
    let under_test = match (&case.plugin, kind) {
        (Some(plugin), _) => Some(plugin.clone()),
        (None, CaseKind::Chain) => None,
        // A `wasm` case: its one plugin.
        (None, _) => config.plugins.keys().next().cloned(),
    };
    Ok(PreparedCase {
        file: file.to_owned(),
        case,
        config,
        kind,
        language: None,
        broken: None,
        under_test,
    })
}

/// The `state` a golden case's redirect carries: fixed, so that the page's
/// URL can be expected.
const GOLDEN_STATE: &str = "golden-state";

const EXPECT_SECTIONS: &[&str] = &[
    "profile",
    "claims",
    "tokens",
    "scopes",
    "user_metadata",
    "app_metadata",
    "denied",
    "error",
    "skipped",
    "redirected",
];

/// The kinds `expect.error.kind` may name (see `failure_kind`).
const ERROR_KINDS: &[&str] = &[
    "limit-exceeded",
    "capacity",
    "trapped",
    "failed",
    "invalid-json",
    "profile-too-large",
    "userinfo",
    "upstream-roles",
    "invalid-claims",
    "unknown-connection",
    "unknown-client",
    "missing-subject",
    "mint",
    "storage",
    "chain-changed",
];

/// Checks one `expect` section's shape, so that a typo or an empty section
/// is an error instead of a check that silently passes. The error text
/// continues the path `expect.<section>`.
fn check_expect_section(section: &str, value: &Value) -> Result<(), String> {
    let keys_of = |value: &Value| -> Result<Vec<String>, String> {
        match value {
            Value::Object(map) => Ok(map.keys().cloned().collect()),
            Value::Null => Err(
                ": is empty; give what the outcome must be, or leave the section out".to_owned(),
            ),
            other => Err(format!(": must be a mapping, not {}", json_kind(other))),
        }
    };
    let only = |keys: &[String], allowed: &[&str]| -> Result<(), String> {
        match keys.iter().find(|key| !allowed.contains(&key.as_str())) {
            Some(key) => Err(format!(
                ".{key}: unknown key (expected {})",
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    };
    let text = |field: &str| -> Result<(), String> {
        match value.get(field) {
            Some(Value::String(_)) => Ok(()),
            Some(other) => Err(format!(
                ".{field}: must be a string, not {}",
                json_kind(other)
            )),
            None => Ok(()),
        }
    };
    match section {
        "error" => {
            let keys = keys_of(value)?;
            only(&keys, &["kind", "message"])?;
            match value.get("kind") {
                None => Err(format!(
                    ".kind: missing (one of {})",
                    ERROR_KINDS.join(", ")
                )),
                Some(Value::String(kind)) if ERROR_KINDS.contains(&kind.as_str()) => {
                    text("message")
                }
                Some(other) => Err(format!(
                    ".kind: `{}` is not a kind (one of {})",
                    other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                    ERROR_KINDS.join(", ")
                )),
            }
        }
        "denied" => {
            let keys = keys_of(value)?;
            only(&keys, &["reason", "any_reason", "plugin", "code"])?;
            text("code")?;
            match (value.get("reason"), value.get("any_reason")) {
                (Some(_), None) => text("reason").and_then(|()| text("plugin")),
                (None, Some(Value::Bool(true))) => text("plugin"),
                (None, None) => Err(
                    ".reason: missing (give the reason, or `any_reason: true` to accept any)"
                        .to_owned(),
                ),
                _ => Err(": give `reason` or `any_reason: true`, not both".to_owned()),
            }
        }
        "claims" | "tokens" => {
            let keys = keys_of(value)?;
            only(&keys, &["access_token", "id_token"])
        }
        "redirected" => {
            let keys = keys_of(value)?;
            only(&keys, &["plugin", "url"])?;
            match value.get("url") {
                None => Err(".url: missing (the page, with its query)".to_owned()),
                Some(_) => text("url").and_then(|()| text("plugin")),
            }
        }
        "scopes" | "skipped" => match value {
            Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
            Value::Array(_) => Err(": must be a list of names".to_owned()),
            other => Err(format!(": must be a list, not {}", json_kind(other))),
        },
        // profile, user_metadata, app_metadata: compared whole, `{}` included.
        _ => keys_of(value).map(|_| ()),
    }
}

/// Keeps, of `config`, what one case runs: the whole chain, or one plugin.
fn focus_config(
    mut config: Config,
    case: &Case,
    plugin: Option<&str>,
) -> Result<(Config, CaseKind), String> {
    let Some(plugin) = plugin else {
        apply_case_secrets(&mut config, case, None);
        return Ok((config, CaseKind::Chain));
    };
    let spec = config
        .plugins
        .get(plugin)
        .ok_or_else(|| format!("the config has no plugin `{plugin}`"))?
        .clone();
    let kind = match spec.world {
        World::ProfileFetcher => {
            let login = &case.input.login("profile-fetcher")?.login;
            let connection = config
                .connections
                .iter_mut()
                .find(|c| c.name == login.connection)
                .ok_or_else(|| format!("the config has no connection `{}`", login.connection))?;
            connection.profile_fetcher = Some(plugin.to_owned());
            config.actions.clear();
            CaseKind::ProfileFetcher
        }
        World::PostLoginAction => {
            config.actions = vec![ActionConfig {
                plugin: plugin.to_owned(),
                on_error: OnError::Fail,
            }];
            // An action's case gives the profile it starts from, or the
            // connection's fetcher runs as configured.
            CaseKind::Action
        }
        World::CredentialsExchange => {
            config.credentials_exchange = vec![ActionConfig {
                plugin: plugin.to_owned(),
                on_error: OnError::Fail,
            }];
            CaseKind::CredentialsExchange
        }
    };
    config.plugins.retain(|name, _| {
        name == plugin
            || config
                .connections
                .iter()
                .any(|c| c.profile_fetcher.as_deref() == Some(name.as_str()))
    });
    apply_case_secrets(&mut config, case, Some(plugin));
    Ok((config, kind))
}

fn apply_case_secrets(config: &mut Config, case: &Case, plugin: Option<&str>) {
    let Some(secrets) = &case.secrets else {
        return;
    };
    let secrets: BTreeMap<String, SecretValue> = secrets
        .iter()
        .map(|(name, value)| (name.clone(), SecretValue::new(value.clone())))
        .collect();
    for (name, spec) in &mut config.plugins {
        if plugin.is_none_or(|p| p == name) {
            spec.secrets = secrets.clone();
        }
    }
}

/// A config around one compiled plugin, for cases without a config file.
fn standalone_config(
    file: &Path,
    wasm: &Path,
    world: World,
    case: &Case,
) -> Result<(Config, CaseKind), String> {
    let name = wasm.file_stem().map_or_else(
        || "plugin".to_owned(),
        |stem| stem.to_string_lossy().replace('_', "-"),
    );
    let mut allowed_origins = Vec::new();
    for origin in &case.allowed_origins {
        allowed_origins.push(origin.parse()?);
    }
    let redirect_origins = case
        .redirect_origins
        .iter()
        .map(|origin| origin.parse())
        .collect::<Result<_, _>>()?;
    let spec = PluginSpec {
        name: name.clone(),
        path: wasm.to_owned(),
        sha256: None,
        source: claimsmith_config::PluginSource::File,
        version: None,
        world,
        capture: false,
        limits: Limits::default(),
        secrets: BTreeMap::new(),
        http: HttpPolicy {
            allowed_origins,
            ..HttpPolicy::default()
        },
        redirect_origins,
    };
    let mut config = Config {
        file: file.to_owned(),
        issuer: "https://claimsmith.test".to_owned(),
        data_dir: PathBuf::new(),
        tokens: TokenSettings::default(),
        engine: EngineSettings::default(),
        server: ServerSettings::default(),
        admin: None,
        storage: StorageSettings::default(),
        keys: KeySettings::default(),
        telemetry: Default::default(),
        console: None,
        plugins: BTreeMap::from([(name.clone(), spec)]),
        connections: Vec::new(),
        clients: Vec::new(),
        actions: Vec::new(),
        credentials_exchange: Vec::new(),
        apis: Vec::new(),
    };
    let one_step = || {
        vec![ActionConfig {
            plugin: name.clone(),
            on_error: OnError::Fail,
        }]
    };
    let kind = match world {
        // The token request names its client itself.
        World::CredentialsExchange => {
            config.credentials_exchange = one_step();
            CaseKind::CredentialsExchange
        }
        World::ProfileFetcher | World::PostLoginAction => {
            let login = &case.input.login(&world.to_string())?.login;
            let fetches = world == World::ProfileFetcher;
            config.connections = vec![ConnectionConfig {
                name: login.connection.clone(),
                profile_fetcher: fetches.then(|| name.clone()),
                options: case.options.clone(),
                upstream: None,
                roles_from: None,
            }];
            config.clients = vec![ClientConfig {
                client_id: login.client_id.clone(),
                name: login.client_id.clone(),
                ..ClientConfig::default()
            }];
            if fetches {
                CaseKind::ProfileFetcher
            } else {
                config.actions = one_step();
                CaseKind::Action
            }
        }
    };
    apply_case_secrets(&mut config, case, None);
    Ok((config, kind))
}

/// One engine for every case, with a pool big enough for the largest plugin,
/// compiling each distinct wasm once.
fn build_engine(
    cases: &[PreparedCase],
    compile_cache: Option<&Path>,
) -> Result<Arc<(Engine, OutboundHttp)>, String> {
    let max_memory_bytes = cases
        .iter()
        .flat_map(|c| c.config.plugins.values())
        .map(|spec| spec.limits.memory_bytes)
        .fold(EngineSettings::default().max_memory_bytes, u64::max);
    // Cases on a `wasm` alone have no data directory: they share the user's
    // cache, so a JavaScript or Python plugin compiles once, not every run.
    let cache_dir = compile_cache
        .map(Path::to_owned)
        .or_else(|| cases.iter().find_map(|c| c.config.engine.cache_dir.clone()))
        .or_else(user_compile_cache);
    let settings = EngineSettings {
        max_memory_bytes,
        cache_dir,
        ..EngineSettings::default()
    };
    let http = OutboundHttp::new().map_err(|e| e.to_string())?;
    let engine = Engine::new(&settings, http.clone()).map_err(|e| e.to_string())?;
    Ok(Arc::new((engine, http)))
}

/// `$XDG_CACHE_HOME/claimsmith/compile-cache`, or under `~/.cache`, created
/// private. Loading an entry runs its machine code, so a cache others can
/// write to is not used (the cases then compile every run).
fn user_compile_cache() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    let dir = base.join("claimsmith/compile-cache");
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let mode = std::fs::metadata(&dir).ok()?.permissions().mode();
    if mode & 0o022 != 0 {
        eprintln!(
            "warning: not using the compile cache {}: others can write to it (chmod 700 it)",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

async fn run_cases(
    shared: Arc<(Engine, OutboundHttp)>,
    cases: Vec<PreparedCase>,
) -> Vec<CaseResult> {
    // One key for the whole run: cases compare claims, not signatures.
    let key = match SigningKey::generate(SigningAlgorithm::ES256) {
        Ok(key) => claimsmith_keys::KeyRing::single(key),
        Err(error) => {
            return cases
                .into_iter()
                .map(|c| broken(&c, format!("cannot make a signing key: {error}")))
                .collect();
        }
    };
    let assembled = match assemble_pipelines(&shared, &key, cases).await {
        Ok(assembled) => assembled,
        Err(error) => {
            return vec![run_failure(
                "<loading the plugins>",
                format!("loading the plugins failed: {error}"),
            )];
        }
    };
    run_in_parallel(assembled).await
}

/// Each case with the pipeline it runs on, or why it has none.
async fn assemble_pipelines(
    shared: &Arc<(Engine, OutboundHttp)>,
    key: &claimsmith_keys::KeyRing,
    cases: Vec<PreparedCase>,
) -> Result<Vec<(PreparedCase, Result<Pipeline, String>)>, tokio::task::JoinError> {
    // Loading hashes, compiles and links the plugins: CPU work kept off the
    // runtime's threads, where it would eat into other cases' wall-clock
    // limits while their plugins run.
    let shared = shared.clone();
    let key = key.clone();
    tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|prepared| {
                let pipeline = match &prepared.broken {
                    Some(why) => Err(why.clone()),
                    None => Pipeline::assemble(
                        prepared.config.clone(),
                        &shared.0,
                        key.clone(),
                        shared.1.clone(),
                    )
                    .map_err(|error| error.to_string()),
                };
                (prepared, pipeline)
            })
            .collect::<Vec<_>>()
    })
    .await
}

/// Runs the assembled cases, a few per CPU at once, their results in order.
async fn run_in_parallel(
    assembled: Vec<(PreparedCase, Result<Pipeline, String>)>,
) -> Vec<CaseResult> {
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut handles = Vec::new();
    for (prepared, pipeline) in assembled {
        let permits = permits.clone();
        handles.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            match pipeline {
                Ok(pipeline) => run_case(&pipeline, prepared).await,
                Err(why) => broken(&prepared, why),
            }
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            Err(error) => results.push(run_failure(
                "<panicked case>",
                format!("the case's task failed: {error}"),
            )),
        }
    }
    results
}

/// A failed result for what went wrong outside any one case.
fn run_failure(name: &str, failure: String) -> CaseResult {
    CaseResult {
        file: PathBuf::new(),
        name: name.to_owned(),
        language: None,
        passed: false,
        duration_ms: 0.0,
        fuel: 0,
        failures: vec![failure],
        notes: Vec::new(),
        actual: Map::new(),
    }
}

fn case_name(prepared: &PreparedCase) -> String {
    let name = prepared.case.name.clone().unwrap_or_else(|| {
        prepared
            .file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    });
    match &prepared.language {
        Some(language) => format!("[{language}] {name}"),
        None => name,
    }
}

fn broken(prepared: &PreparedCase, why: String) -> CaseResult {
    CaseResult {
        file: prepared.file.clone(),
        name: case_name(prepared),
        language: prepared.language.clone(),
        passed: false,
        duration_ms: 0.0,
        fuel: 0,
        failures: vec![why],
        notes: Vec::new(),
        actual: Map::new(),
    }
}

async fn run_case(pipeline: &Pipeline, prepared: PreparedCase) -> CaseResult {
    let started = Instant::now();
    let input = &prepared.case.input;
    let canned = Arc::new(
        CannedHttp::new(input.http().cloned().unwrap_or_default())
            .matching_secrets_of(&prepared.config),
    );
    let options = RunOptions {
        interceptor: Some(canned.clone()),
        now: input.now(),
        log_sink: None,
        redirect_state: Some(GOLDEN_STATE.to_owned()),
        ..RunOptions::default()
    };
    let (steps, actual) = run_input(pipeline, input, prepared.kind, &options).await;
    let duration = started.elapsed();
    let fuel: u64 = steps.iter().filter_map(|s| s.fuel_consumed).sum();

    let mut failures = Vec::new();
    if let Some(plugin) = &prepared.under_test
        && !steps.iter().any(|step| step.name == *plugin)
    {
        let fetch_skipped =
            matches!(input, CaseInput::Login(recorded) if recorded.login.profile.is_some());
        let hint = if prepared.kind == CaseKind::ProfileFetcher && fetch_skipped {
            " (the case gives `input.profile`, so the profile fetcher is skipped)"
        } else {
            ""
        };
        failures.push(format!(
            "plugin `{plugin}` did not run{hint}: the case checks nothing of it"
        ));
    }
    if !prepared.case.expect.contains_key("skipped") {
        for step in &steps {
            if let StepStatus::Skipped { error } = &step.status {
                failures.push(format!(
                    "action `{}` was skipped under on_error = \"continue\" ({error}); if that is expected, say `skipped: [{}]` under `expect`",
                    step.name, step.name
                ));
            }
        }
    }
    for request in canned.unmatched() {
        failures.push(format!("request matched no exchange: {request}"));
    }
    for exchange in canned.unrequested() {
        failures.push(format!(
            "exchange never requested (mark it `optional: true` if that is fine): {exchange}"
        ));
    }
    if let Some(max_fuel) = prepared.case.max_fuel
        && fuel > max_fuel
    {
        failures.push(format!("used {fuel} fuel, more than max_fuel {max_fuel}"));
    }
    for (section, expected) in &prepared.case.expect {
        let actual_section = actual.get(section).cloned().unwrap_or(Value::Null);
        if !section_matches(section, expected, &actual_section) {
            failures.push(format!(
                "expect.{section} differs:\n{}",
                unified_diff(expected, &actual_section)
            ));
        }
    }
    CaseResult {
        file: prepared.file.clone(),
        name: case_name(&prepared),
        language: prepared.language.clone(),
        passed: failures.is_empty(),
        duration_ms: duration.as_secs_f64() * 1000.0,
        fuel,
        failures,
        notes: canned
            .refusals()
            .into_iter()
            .map(|refusal| format!("request refused by the plugin's HTTP policy: {refusal}"))
            .collect(),
        actual,
    }
}

/// Runs `input` on `pipeline`: its steps, and its outcome in the shape of
/// a case's `expect`.
async fn run_input(
    pipeline: &Pipeline,
    input: &CaseInput,
    kind: CaseKind,
    options: &RunOptions,
) -> (Vec<claimsmith_pipeline::StepReport>, Map<String, Value>) {
    match input {
        CaseInput::Login(recorded) => {
            let report = pipeline.run(&recorded.login, options).await;
            let actual = outcome(&report, kind, input.now().is_some());
            (report.steps, actual)
        }
        CaseInput::TokenRequest(recorded) => {
            let client = recorded.client_config();
            let request = recorded.token_request(&client);
            let report = pipeline.exchange_credentials(&request, options).await;
            let actual = exchange::exchange_outcome(&report, request.scopes);
            (report.steps, actual)
        }
    }
}

/// What one run of a login through a plugin (or the chain) gave: the
/// admin console's Try it.
#[derive(Debug, Clone, Serialize)]
pub struct Tried {
    /// In the shape of a case's `expect`: `claims`, `denied` or `error`
    /// (and `profile` for a profile fetcher or the chain).
    pub outcome: Map<String, Value>,
    pub steps: Vec<claimsmith_pipeline::StepReport>,
    pub logs: Vec<claimsmith_capabilities::log::LogLine>,
    /// Requests that matched no canned exchange, or that the plugin's HTTP
    /// policy refused.
    pub notes: Vec<String>,
    /// The run as a golden case file (YAML), its `expect` what it gave.
    pub golden_case: String,
}

/// Runs `input` (a login in the `claimsmith run --input` shape, or a
/// credentials-exchange case's token request, its HTTP
/// answered from its `http` exchanges, never sent) through `plugin` alone,
/// or the whole chain when None, with the plugins and grants of `config`,
/// on `engine` (whose compile cache already holds the serving plugins).
pub async fn try_login(
    config: &Config,
    engine: &Engine,
    http: OutboundHttp,
    plugin: Option<&str>,
    mut input: Value,
) -> Result<Tried, String> {
    let mut parsed: CaseInput =
        serde_json::from_value(input.clone()).map_err(|error| format!("input: {error}"))?;
    // Pinned to the try's own second and written into the case it makes:
    // a plugin that reads the clock sets the same claims when the case runs.
    let now = claimsmith_core::SystemClock.now();
    if !parsed.pin_clock(now)
        && let Some(fields) = input.as_object_mut()
    {
        fields.insert("now".into(), now.into());
    }
    let case = Case {
        name: None,
        config: Some(config.file.clone()),
        plugin: plugin.map(str::to_owned),
        wasm: None,
        world: None,
        allowed_origins: Vec::new(),
        redirect_origins: Vec::new(),
        options: Map::new(),
        secrets: None,
        max_fuel: None,
        languages: None,
        input: parsed,
        expect: Map::new(),
    };
    let (focused, kind) = focus_config(config.clone(), &case, plugin)?;
    check_input_kind(&case.input, kind)?;
    let key = SigningKey::generate(SigningAlgorithm::ES256).map_err(|e| e.to_string())?;
    let pipeline = Pipeline::assemble(focused, engine, claimsmith_keys::KeyRing::single(key), http)
        .map_err(|error| error.to_string())?;
    let canned = Arc::new(
        CannedHttp::new(case.input.http().cloned().unwrap_or_default()).hiding_credentials(),
    );
    let sink = claimsmith_capabilities::log::LogSink::default();
    let options = RunOptions {
        interceptor: Some(canned.clone()),
        now: case.input.now(),
        log_sink: Some(sink.clone()),
        redirect_state: Some(GOLDEN_STATE.to_owned()),
        ..RunOptions::default()
    };
    let (steps, mut outcome) = run_input(&pipeline, &case.input, kind, &options).await;
    // A case file keeps what a reader checks: the rest is noise there.
    outcome.retain(|section, value| match section.as_str() {
        "tokens" | "scopes" => false,
        "skipped" | "user_metadata" | "app_metadata" => {
            value.as_array().is_some_and(|a| !a.is_empty())
                || value.as_object().is_some_and(|o| !o.is_empty())
        }
        _ => true,
    });
    let mut notes: Vec<String> = canned
        .unmatched()
        .into_iter()
        .map(|request| format!("request matched no exchange: {request}"))
        .collect();
    notes.extend(
        canned
            .refusals()
            .into_iter()
            .map(|refusal| format!("request refused by the plugin's HTTP policy: {refusal}")),
    );
    let golden_case = tried_as_golden_case(config, plugin, input, &outcome)?;
    let tried = Tried {
        outcome,
        steps,
        logs: sink.lines(),
        notes,
        golden_case,
    };
    Ok(tried.redacted(&Redaction::of(config, &[])))
}

impl Tried {
    fn redacted(mut self, redaction: &Redaction) -> Self {
        self.outcome = match redaction.json(Value::Object(self.outcome)) {
            Value::Object(outcome) => outcome,
            _ => Map::new(),
        };
        for line in &mut self.logs {
            line.message = redaction.text(&line.message);
        }
        for note in &mut self.notes {
            *note = redaction.text(note);
        }
        self.golden_case = redaction.text(&self.golden_case);
        self
    }
}

/// A Try it run as a golden case file (YAML) expecting `outcome`.
fn tried_as_golden_case(
    config: &Config,
    plugin: Option<&str>,
    input: Value,
    outcome: &Map<String, Value>,
) -> Result<String, String> {
    let name = format!(
        "{} (from the console's Try it)",
        plugin.unwrap_or("the whole chain")
    );
    let config = config.file.display().to_string();
    case_file(&name, &config, plugin, input, outcome.clone())
}

/// A golden case file (YAML): `input` run with `config` (through `plugin`
/// alone, or the whole chain) must give `expect`.
fn case_file(
    name: &str,
    config: &str,
    plugin: Option<&str>,
    input: Value,
    expect: Map<String, Value>,
) -> Result<String, String> {
    let mut file = Map::new();
    file.insert("name".into(), Value::String(name.to_owned()));
    file.insert("config".into(), Value::String(config.to_owned()));
    if let Some(plugin) = plugin {
        file.insert("plugin".into(), Value::String(plugin.to_owned()));
    }
    file.insert("input".into(), input);
    file.insert("expect".into(), Value::Object(expect));
    serde_norway::to_string(&Value::Object(file)).map_err(|e| e.to_string())
}

/// The outcome of a case, in the shape of its `expect` section.
fn outcome(report: &LoginReport, kind: CaseKind, clock_pinned: bool) -> Map<String, Value> {
    let mut actual = Map::new();
    // Whatever the outcome: an action skipped under `on_error = "continue"`
    // changed nothing, and a case must say it expects that.
    actual.insert("skipped".into(), skipped_steps(&report.steps));
    match &report.outcome {
        Ok(LoginEnd::Redirected(redirected)) => {
            actual.insert(
                "redirected".into(),
                json!({ "plugin": redirected.plugin, "url": redirected.to }),
            );
        }
        Ok(LoginEnd::Minted(minted)) => {
            if kind != CaseKind::Action {
                actual.insert("profile".into(), Value::Object(minted.user.profile.clone()));
            }
            actual.insert(
                "claims".into(),
                json!({
                    "access_token": minted.access_token_claims,
                    "id_token": minted.id_token_claims,
                }),
            );
            actual.insert(
                "tokens".into(),
                json!({
                    "access_token": normalized_claims(&minted.tokens.access_token, clock_pinned),
                    "id_token": normalized_claims(&minted.tokens.id_token, clock_pinned),
                }),
            );
            actual.insert("scopes".into(), json!(minted.scopes));
            actual.insert(
                "user_metadata".into(),
                Value::Object(minted.user.user_metadata.clone()),
            );
            actual.insert(
                "app_metadata".into(),
                Value::Object(minted.user.app_metadata.clone()),
            );
        }
        Err(LoginFailure::Denied { plugin, reason }) => {
            actual.insert(
                "denied".into(),
                json!({ "plugin": plugin, "reason": reason }),
            );
        }
        Err(failure) => {
            actual.insert(
                "error".into(),
                json!({ "kind": failure_kind(failure), "message": failure.to_string() }),
            );
        }
    }
    actual
}

/// The names of the steps skipped under `on_error = "continue"`.
fn skipped_steps(steps: &[claimsmith_pipeline::StepReport]) -> Value {
    steps
        .iter()
        .filter(|step| matches!(step.status, StepStatus::Skipped { .. }))
        .map(|step| Value::String(step.name.clone()))
        .collect()
}

fn plugin_error_kind(error: &PluginError) -> &'static str {
    match error {
        PluginError::LimitExceeded { .. } => "limit-exceeded",
        PluginError::Trapped { .. } => "trapped",
        PluginError::Failed { .. } => "failed",
        PluginError::InvalidJson { .. } => "invalid-json",
        PluginError::ProfileTooLarge { .. } => "profile-too-large",
        PluginError::Capacity { .. } => "capacity",
    }
}

fn failure_kind(failure: &LoginFailure) -> &'static str {
    match failure {
        LoginFailure::Plugin(error) => plugin_error_kind(error),
        LoginFailure::UnknownConnection(_) => "unknown-connection",
        LoginFailure::UnknownClient(_) => "unknown-client",
        LoginFailure::MissingSubject => "missing-subject",
        LoginFailure::Userinfo(_) => "userinfo",
        LoginFailure::UpstreamRoles { .. } => "upstream-roles",
        LoginFailure::InvalidClaims { .. } => "invalid-claims",
        LoginFailure::Mint(_) => "mint",
        LoginFailure::Storage => "storage",
        LoginFailure::UserUnavailable => "user-unavailable",
        LoginFailure::Denied { .. } => "denied",
        LoginFailure::ChainChanged { .. } => "chain-changed",
    }
}

/// The claims of a compact JWT with the per-run ones replaced by placeholders.
fn normalized_claims(token: &str, clock_pinned: bool) -> Value {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .unwrap_or_default();
    Value::Object(
        claims
            .into_iter()
            .map(|(name, value)| {
                if RANDOM_CLAIMS.contains(&name.as_str())
                    || (!clock_pinned && TIME_CLAIMS.contains(&name.as_str()))
                {
                    let placeholder = Value::String(format!("<{name}>"));
                    (name, placeholder)
                } else {
                    (name, value)
                }
            })
            .collect(),
    )
}

/// Sections compare whole, except an error's message, which the case gives
/// as a substring, and a denial's plugin and code, which it may leave out.
fn section_matches(section: &str, expected: &Value, actual: &Value) -> bool {
    match section {
        "error" => {
            expected.get("kind") == actual.get("kind")
                && match (expected.get("message"), actual.get("message")) {
                    (None, _) => true,
                    (Some(Value::String(part)), Some(Value::String(message))) => {
                        message.contains(part.as_str())
                    }
                    _ => false,
                }
        }
        "denied" => {
            // Loading checked that `reason` or `any_reason: true` is given.
            let reason_matches = match expected.get("reason") {
                Some(reason) => Some(reason) == actual.get("reason"),
                None => actual.get("reason").is_some(),
            };
            let given_matches = |field: &str| {
                expected
                    .get(field)
                    .is_none_or(|v| Some(v) == actual.get(field))
            };
            reason_matches && given_matches("plugin") && given_matches("code")
        }
        _ => expected == actual,
    }
}

/// A unified diff of two JSON values, pretty-printed with sorted keys.
pub fn unified_diff(expected: &Value, actual: &Value) -> String {
    // serde_json's Map keeps keys sorted, so the text is stable.
    let expected = serde_json::to_string_pretty(expected).unwrap_or_default() + "\n";
    let actual = serde_json::to_string_pretty(actual).unwrap_or_default() + "\n";
    similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

fn colorize(diff: &str) -> String {
    diff.lines()
        .map(|line| match line.as_bytes().first() {
            Some(b'-') if !line.starts_with("---") => format!("\x1b[31m{line}\x1b[0m"),
            Some(b'+') if !line.starts_with("+++") => format!("\x1b[32m{line}\x1b[0m"),
            Some(b'@') => format!("\x1b[36m{line}\x1b[0m"),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn report(summary: &Summary, options: &SuiteOptions, out: &mut dyn Write) -> std::io::Result<()> {
    if options.json {
        let document = json!({
            "results": summary.results,
            "unreadable": summary.unreadable,
            "passed": summary.passed(),
            "failed": summary.failed(),
        });
        writeln!(out, "{document:#}")?;
        return Ok(());
    }
    for error in &summary.unreadable {
        writeln!(out, "ERROR {error}")?;
    }
    for result in &summary.results {
        let status = if result.passed { "pass" } else { "FAIL" };
        writeln!(
            out,
            "{status} {} ({:.1} ms, {} fuel) {}",
            result.name,
            result.duration_ms,
            result.fuel,
            result.file.display()
        )?;
        for note in &result.notes {
            writeln!(out, "    note: {note}")?;
        }
        for failure in &result.failures {
            let text = if options.color {
                colorize(failure)
            } else {
                failure.clone()
            };
            for line in text.lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    writeln!(
        out,
        "{} passed, {} failed",
        summary.passed(),
        summary.failed()
    )
}

fn junit_xml(summary: &Summary) -> String {
    // XML 1.0 cannot carry control characters (ANSI colour codes, say) even
    // escaped: they are dropped, tabs and line breaks kept.
    let escape = |text: &str| {
        text.chars()
            .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let folder = |file: &Path| {
        file.parent()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default()
    };
    // Every <testcase> written is counted, the unreadable files included.
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"claimsmith\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        summary.results.len() + summary.unreadable.len(),
        summary.failed(),
        summary.unreadable.len()
    );
    for result in &summary.results {
        xml += &format!(
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.4}\">",
            escape(&folder(&result.file)),
            escape(&result.name),
            result.duration_ms / 1000.0
        );
        if let Some(first) = result.failures.first() {
            // The message is the first reason's first line: "expect.claims
            // differs:", "request matched no exchange: ...", "used ... fuel".
            let message = first.lines().next().unwrap_or_default();
            xml += &format!(
                "<failure message=\"{}\">{}</failure>",
                escape(message),
                escape(&result.failures.join("\n"))
            );
        }
        xml += "</testcase>\n";
    }
    for error in &summary.unreadable {
        let (file, why) = error.split_once(": ").unwrap_or(("", error));
        xml += &format!(
            "  <testcase classname=\"{}\" name=\"{}\"><error message=\"{}\"/></testcase>\n",
            escape(&folder(Path::new(file))),
            escape(file),
            escape(why)
        );
    }
    xml + "</testsuite>\n"
}

/// Rewrites the `expect:` block of each case to bless, keeping the rest of
/// the file as it was.
/// The kind of outcome an `expect` block, or a case's actual outcome, is.
fn outcome_kind(sections: &Map<String, Value>) -> &'static str {
    if sections.contains_key("error") {
        "an error"
    } else if sections.contains_key("denied") {
        "a denial"
    } else if sections.contains_key("redirected") {
        "a redirect"
    } else {
        "minted tokens"
    }
}

/// Rewrites the `expect` blocks of failing cases (every case with `all`),
/// telling `out` what it did and what it refused. `--bless` never turns a
/// regression into a pass: it only rewrites expectation diffs, and a change
/// of outcome kind needs `--bless-all`. A case it cannot write is reported
/// and the others go on.
fn bless(summary: &Summary, all: bool, out: &mut dyn Write) -> std::io::Result<()> {
    for result in &summary.results {
        if result.passed && !all || result.actual.is_empty() {
            continue;
        }
        let file = result.file.display();
        if let Some(other) = result.failures.iter().find(|f| !f.starts_with("expect.")) {
            let reason = other.lines().next().unwrap_or_default();
            writeln!(
                out,
                "not blessed {file}: it failed for another reason than its expectations: {reason}"
            )?;
            continue;
        }
        if result.file.extension().is_some_and(|e| e == "json") {
            writeln!(
                out,
                "not blessed {file}: JSON cases are not rewritten; edit its `expect` by hand"
            )?;
            continue;
        }
        let text = match std::fs::read_to_string(&result.file) {
            Ok(text) => text,
            Err(error) => {
                writeln!(out, "not blessed {file}: cannot read it: {error}")?;
                continue;
            }
        };
        let Ok(case) = parse_yaml::<Case>(&result.file, &text) else {
            continue;
        };
        let (expected_kind, actual_kind) =
            (outcome_kind(&case.expect), outcome_kind(&result.actual));
        if expected_kind != actual_kind {
            if !all {
                writeln!(
                    out,
                    "not blessed {file}: it expected {expected_kind} and got {actual_kind}; use --bless-all to accept that change"
                )?;
                continue;
            }
            writeln!(
                out,
                "outcome changed in {file}: {expected_kind} -> {actual_kind}"
            )?;
        }
        let blessed = blessed_expectation(&case.expect, &result.actual);
        let rewritten = replace_expect_block(&text, &case.expect, &blessed);
        match std::fs::write(&result.file, rewritten) {
            Ok(()) => writeln!(out, "blessed {file}")?,
            Err(error) => writeln!(out, "not blessed {file}: cannot write it: {error}")?,
        }
    }
    Ok(())
}

/// The sections the case already checks, with the actual values; when the
/// kind of outcome changed (an error where a profile was expected, say), the
/// outcome's own sections instead.
fn blessed_expectation(
    expected: &Map<String, Value>,
    actual: &Map<String, Value>,
) -> Map<String, Value> {
    let kept: Map<String, Value> = expected
        .keys()
        .filter_map(|section| Some((section.clone(), actual.get(section)?.clone())))
        .collect();
    if !kept.is_empty() {
        return kept;
    }
    for section in ["error", "denied", "redirected"] {
        if let Some(value) = actual.get(section) {
            return Map::from_iter([(section.to_owned(), value.clone())]);
        }
    }
    let defaults = ["profile", "claims", "scopes"];
    defaults
        .iter()
        .filter_map(|section| Some(((*section).to_owned(), actual.get(*section)?.clone())))
        .collect()
}

/// Rewrites the top-level `expect:` block of a YAML document to `expect`,
/// section by section: a section whose value did not change keeps its lines
/// as written (comments and flow style included), comment lines between
/// sections stay where they are, a changed section is written anew, a
/// section no longer expected goes, and a new one is added at the end.
fn replace_expect_block(
    text: &str,
    old_expect: &Map<String, Value>,
    expect: &Map<String, Value>,
) -> String {
    let render = |name: &str, value: &Value| -> String {
        let section = Map::from_iter([(name.to_owned(), value.clone())]);
        serde_norway::to_string(&Value::Object(section))
            .unwrap_or_default()
            .lines()
            .map(|line| format!("  {line}\n"))
            .collect()
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(start) = lines.iter().position(|line| line.starts_with("expect:")) else {
        let block: String = expect
            .iter()
            .map(|(name, value)| render(name, value))
            .collect();
        return format!("{}\nexpect:\n{block}", text.trim_end());
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.chars().next().is_some_and(|c| !c.is_whitespace()))
        .map_or(lines.len(), |offset| start + 1 + offset);

    // A section starts at a key indented by two spaces; deeper lines belong
    // to it; blank lines and comments at its own indent belong to none.
    let section_of = |line: &str| -> Option<String> {
        let rest = line.strip_prefix("  ")?;
        if rest.starts_with([' ', '#', '\n', '\r']) || rest.trim().is_empty() {
            return None;
        }
        Some(rest.split(':').next().unwrap_or_default().trim().to_owned())
    };
    let belongs_to_section = |line: &str| line.starts_with("   ") && !line.trim().is_empty();

    let mut rewritten: String = lines[..=start].concat();
    let mut written = Vec::new();
    let mut index = start + 1;
    while index < end {
        let line = lines[index];
        let Some(name) = section_of(line) else {
            rewritten += line;
            index += 1;
            continue;
        };
        let mut section_end = index + 1;
        while section_end < end && belongs_to_section(lines[section_end]) {
            section_end += 1;
        }
        match expect.get(&name) {
            Some(value) if old_expect.get(&name) == Some(value) => {
                rewritten += &lines[index..section_end].concat();
            }
            Some(value) => rewritten += &render(&name, value),
            None => {}
        }
        written.push(name);
        index = section_end;
    }
    for (name, value) in expect {
        if !written.contains(name) {
            rewritten += &render(name, value);
        }
    }
    rewritten += &lines[end..].concat();
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expect_block_is_replaced_and_the_rest_kept() {
        let text = "# a comment\nname: x\nexpect:\n  profile:\n    a: 1\n# trailing note\ninput:\n  k: v\n";
        let old = Map::from_iter([("profile".to_owned(), json!({"a": 1}))]);
        let expect = Map::from_iter([("profile".to_owned(), json!({"a": 2}))]);
        let rewritten = replace_expect_block(text, &old, &expect);
        assert_eq!(
            rewritten,
            "# a comment\nname: x\nexpect:\n  profile:\n    a: 2\n# trailing note\ninput:\n  k: v\n"
        );
    }

    #[test]
    fn a_case_that_cannot_be_blessed_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(
            &good,
            "wasm: x.wasm\nworld: post-login-action\ninput:\n  connection: c\n  client_id: a\n  upstream: { access_token: t, id_token_claims: { sub: u } }\nexpect:\n  scopes: [openid]\n",
        )
        .unwrap();
        let failing = |file: PathBuf| CaseResult {
            file,
            name: "case".to_owned(),
            language: None,
            passed: false,
            duration_ms: 0.0,
            fuel: 0,
            failures: vec!["expect.scopes differs:".to_owned()],
            notes: Vec::new(),
            actual: Map::from_iter([("scopes".to_owned(), json!(["openid", "email"]))]),
        };
        let summary = Summary {
            // The first case's file is gone by the time it is blessed.
            results: vec![failing(dir.path().join("gone.yaml")), failing(good.clone())],
            unreadable: Vec::new(),
        };
        let mut out = Vec::new();
        bless(&summary, false, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("gone.yaml: cannot read it"), "{out}");
        assert!(
            out.contains(&format!("blessed {}", good.display())),
            "{out}"
        );
        let blessed = std::fs::read_to_string(&good).unwrap();
        assert!(
            blessed.ends_with("expect:\n  scopes:\n  - openid\n  - email\n"),
            "{blessed}"
        );
    }

    #[test]
    fn comments_and_unchanged_sections_inside_expect_are_kept() {
        let text = "expect:\n  # why the claims matter\n  claims:\n    access_token: { geo: XX }   # was DE\n  \n  # scopes as granted\n  scopes: [openid]  # no offline_access\n  denied: { reason: r }\ninput: {}\n";
        let old = Map::from_iter([
            ("claims".to_owned(), json!({"access_token": {"geo": "XX"}})),
            ("scopes".to_owned(), json!(["openid"])),
            ("denied".to_owned(), json!({"reason": "r"})),
        ]);
        let expect = Map::from_iter([
            ("claims".to_owned(), json!({"access_token": {"geo": "FR"}})),
            ("scopes".to_owned(), json!(["openid"])),
            ("profile".to_owned(), json!({"sub": "u"})),
        ]);
        assert_eq!(
            replace_expect_block(text, &old, &expect),
            "expect:\n  # why the claims matter\n  claims:\n    access_token:\n      geo: FR\n  \n  # scopes as granted\n  scopes: [openid]  # no offline_access\n  profile:\n    sub: u\ninput: {}\n"
        );
    }

    #[test]
    fn errors_match_on_kind_and_message_substring() {
        let actual = json!({"kind": "failed", "message": "plugin `x` failed: StatusCode: 401"});
        assert!(section_matches(
            "error",
            &json!({"kind": "failed", "message": "StatusCode: 401"}),
            &actual
        ));
        assert!(!section_matches(
            "error",
            &json!({"kind": "trapped", "message": "401"}),
            &actual
        ));
        assert!(!section_matches(
            "error",
            &json!({"kind": "failed", "message": "403"}),
            &actual
        ));
    }

    #[test]
    fn varying_claims_are_normalised() {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iat":1,"exp":2,"jti":"x","sub":"u","geo":"NZ"}"#);
        let normalized = normalized_claims(&format!("h.{payload}.s"), false);
        assert_eq!(
            normalized,
            json!({"iat": "<iat>", "exp": "<exp>", "jti": "<jti>", "sub": "u", "geo": "NZ"})
        );
        // A pinned clock makes the times exact; randomness stays hidden.
        let pinned = normalized_claims(&format!("h.{payload}.s"), true);
        assert_eq!(
            pinned,
            json!({"iat": 1, "exp": 2, "jti": "<jti>", "sub": "u", "geo": "NZ"})
        );
    }

    #[test]
    fn diffs_are_unified_with_sorted_keys() {
        let diff = unified_diff(&json!({"b": 1, "a": "NZ"}), &json!({"a": "DE", "b": 1}));
        assert!(diff.contains("--- expected\n+++ actual\n"), "{diff}");
        assert!(
            diff.contains("-  \"a\": \"NZ\",\n+  \"a\": \"DE\",\n"),
            "{diff}"
        );
    }
}
