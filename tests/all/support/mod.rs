//! Support for the end-to-end tests: the compiled plugins, a config written
//! the way a user writes one, and real HTTP servers on loopback.
//!
//! The plugins are built by `cargo xtask test` (or `cargo xtask plugins`)
//! before the tests run; nothing here compiles or fakes a plugin.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use claimsmith::capabilities::http::OutboundHttp;
use claimsmith::config::Config;
use claimsmith::pipeline::{
    Login, LoginFailure, LoginReport, MintedLogin, Pipeline, RunOptions, StartError,
};
use serde_json::json;

pub mod chromium;
pub mod measuring;
pub mod service_harness;

/// The workspace root.
pub fn root() -> PathBuf {
    // This binary belongs to `host/claimsmith`, two levels below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("host/claimsmith is inside the workspace")
}

/// The compiled component of the Rust plugin `name` (e.g. `test-looper`).
pub fn plugin_wasm(name: &str) -> PathBuf {
    language_plugin_wasm("rust", name)
}

/// The compiled component of plugin `name` in `language` (`rust`, `js`,
/// `python`), where `claimsmith build` puts it.
pub fn language_plugin_wasm(language: &str, name: &str) -> PathBuf {
    let path = root()
        .join("target/plugins")
        .join(language)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins with `cargo xtask test` (or `cargo xtask plugins`)",
        path.display()
    );
    path
}

/// Builds the one plugin project in `project` into `out`, with the
/// toolchains `cargo xtask test` installed (the user's, as `claimsmith
/// build` finds them).
pub fn build_project(project: &Path, out: &Path) -> anyhow::Result<claimsmith::build::Built> {
    let found = claimsmith::build::discover(&[project.to_owned()])?;
    let options = claimsmith::build::BuildOptions {
        out_dir: out.to_owned(),
        toolchains_dir: claimsmith::build::default_toolchains_dir(),
        cargo_target_dir: None,
    };
    claimsmith::build::build(&found[0], &options)
}

/// The compile cache all tests share, so each plugin compiles once per run.
pub fn test_compile_cache() -> PathBuf {
    root().join("target/test-compile-cache")
}

/// The golden runner's options for the tests: its compile cache is the
/// tests' own, so a plugin the suite compiled once is not compiled again.
pub fn golden_options() -> claimsmith::golden::SuiteOptions {
    claimsmith::golden::SuiteOptions {
        compile_cache: Some(test_compile_cache()),
        ..Default::default()
    }
}

/// A config under construction, in TOML, with a data directory of its own.
pub struct Setup {
    dir: tempfile::TempDir,
    toml: String,
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Setup {
    /// An issuer, one client `app` (audience `https://api.example.com`) and a
    /// compile cache shared by all tests, so each plugin compiles once.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cache = test_compile_cache();
        let toml = format!(
            r#"
issuer = "https://login.example.com"
data_dir = "data"

[engine]
compile_cache_dir = {cache:?}

[[clients]]
client_id = "app"
name = "Test App"
audience = "https://api.example.com"
"#
        );
        Setup { dir, toml }
    }

    /// Sets the instance pool's size.
    pub fn max_concurrent_instances(mut self, count: u32) -> Self {
        self.toml = self.toml.replacen(
            "[engine]\n",
            &format!("[engine]\nmax_concurrent_instances = {count}\n"),
            1,
        );
        self
    }

    /// A chain of post-login actions on connection `okta` (no profile
    /// fetcher), one step per `(name, plugin crate, on_error, extra plugin TOML)`.
    pub fn actions(mut self, steps: &[(&str, &str, &str, &str)]) -> Self {
        for (name, crate_name, _, extra) in steps {
            self = self.plugin(name, crate_name, "post-login-action", extra);
        }
        self = self.connection("okta", None, "{}");
        for (name, _, on_error, _) in steps {
            self = self.action(name, on_error);
        }
        self
    }

    /// Adds `[plugins.<name>]` for Rust plugin `crate_name`, with extra TOML lines.
    pub fn plugin(self, name: &str, crate_name: &str, world: &str, extra: &str) -> Self {
        self.plugin_at(name, &plugin_wasm(crate_name), world, extra)
    }

    /// Adds `[plugins.<name>]` for the component at `wasm`, with extra TOML lines.
    pub fn plugin_at(mut self, name: &str, wasm: &Path, world: &str, extra: &str) -> Self {
        self.toml +=
            &format!("\n[plugins.{name}]\npath = {wasm:?}\nworld = \"{world}\"\n{extra}\n");
        self
    }

    /// Adds a connection named `name`; `fetcher` names its profile fetcher.
    pub fn connection(mut self, name: &str, fetcher: Option<&str>, options: &str) -> Self {
        self.toml += &format!("\n[[connections]]\nname = \"{name}\"\noptions = {options}\n");
        if let Some(fetcher) = fetcher {
            self.toml += &format!("profile_fetcher = \"{fetcher}\"\n");
        }
        self
    }

    /// Adds a client with metadata (TOML inline table).
    pub fn client(mut self, client_id: &str, metadata: &str) -> Self {
        self.toml += &format!(
            "\n[[clients]]\nclient_id = \"{client_id}\"\nname = \"{client_id}\"\nmetadata = {metadata}\n"
        );
        self
    }

    /// Appends an action step.
    pub fn action(mut self, plugin: &str, on_error: &str) -> Self {
        self.toml += &format!("\n[[actions]]\nplugin = \"{plugin}\"\non_error = \"{on_error}\"\n");
        self
    }

    /// The config file, written where a user would keep it.
    pub fn write(&self) -> PathBuf {
        let path = self.dir.path().join("claimsmith.toml");
        std::fs::write(&path, &self.toml).expect("write the config");
        path
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Reads the config as `claimsmith` does and starts the pipeline.
    pub fn start(&self) -> Result<Pipeline, StartError> {
        self.start_with(OutboundHttp::new().expect("an HTTP client"))
    }

    pub fn start_with(&self, http: OutboundHttp) -> Result<Pipeline, StartError> {
        let config = Config::load(&self.write()).unwrap_or_else(|e| panic!("{e}\n{}", self.toml));
        Pipeline::new(config, http)
    }
}

/// A login of `sub` = `00u1ada` through connection `connection` to client `app`.
pub fn login(connection: &str) -> Login {
    serde_json::from_value(login_json(connection)).expect("a valid login")
}

/// [`login`] as JSON: the login part of `claimsmith run --input`.
pub fn login_json(connection: &str) -> serde_json::Value {
    json!({
        "connection": connection,
        "client_id": "app",
        "scopes": ["openid", "profile", "email"],
        "nonce": "nonce-123",
        "request": { "ip": "203.0.113.7", "user_agent": "test-agent" },
        "upstream": {
            "access_token": "upstream-at",
            "id_token": "header.payload.signature",
            "id_token_claims": {
                "iss": "https://upstream.example.com",
                "sub": "00u1ada",
                "aud": "claimsmith",
                "email": "ada@example.com",
                "geoipcountry": "NZ"
            }
        }
    })
}

/// Runs `login` through `pipeline` with default options: each step and the end.
pub async fn report(pipeline: &Pipeline, login: &Login) -> LoginReport {
    pipeline.run(login, &RunOptions::default()).await
}

/// Runs `login` through `pipeline` with default options: what it ended in.
/// Without a redirect state no action can send the user away, so a login
/// that did not fail minted.
pub async fn outcome(pipeline: &Pipeline, login: &Login) -> Result<MintedLogin, LoginFailure> {
    let end = report(pipeline, login).await.outcome?;
    Ok(end
        .minted()
        .expect("no action can redirect without a redirect state"))
}

/// A real HTTP server on an ephemeral loopback port, serving `router` until
/// the test's runtime ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}
