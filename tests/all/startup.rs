//! What fails at start, before any login: bad plugins and bad configs, each
//! with a message naming what is wrong and where.

use crate::support::{Setup, plugin_wasm};
use claimsmith::config::Config;
use claimsmith::engine::LoadError;
use claimsmith::pipeline::StartError;

fn load_error(result: Result<claimsmith::pipeline::Pipeline, StartError>) -> LoadError {
    match result {
        Err(StartError::Plugin(error)) => error,
        Err(other) => panic!("expected a plugin load error, got {other}"),
        Ok(_) => panic!("expected the start to fail"),
    }
}

#[test]
fn a_plugin_built_for_the_other_world_fails_the_start() {
    let error = load_error(
        Setup::new()
            .plugin("geo", "geo-claims", "profile-fetcher", "")
            .start(),
    );
    let message = error.to_string();
    assert!(matches!(error, LoadError::WrongWorld { .. }), "{message}");
    assert!(
        message.starts_with(
            "plugin `geo` is configured as a profile-fetcher but does not implement that world"
        ),
        "{message}"
    );
    assert!(message.contains("it is a post-login-action"), "{message}");
}

#[test]
fn a_plugin_importing_what_its_world_does_not_grant_fails_the_start() {
    // A profile fetcher importing the post-login `api`, which fetchers are not given.
    let error = load_error(
        Setup::new()
            .plugin("greedy", "test-greedy", "profile-fetcher", "")
            .start(),
    );
    let message = error.to_string();
    assert!(
        matches!(error, LoadError::UngrantedImport { .. }),
        "{message}"
    );
    assert!(
        message.contains("plugin `greedy`") && message.contains("claimsmith:plugin/api"),
        "{message}"
    );
}

#[test]
fn a_plugin_importing_an_interface_outside_wasi_and_the_contract_fails_the_start() {
    let error = load_error(
        Setup::new()
            .plugin("foreign", "test-foreign-import", "post-login-action", "")
            .start(),
    );
    let message = error.to_string();
    assert!(
        matches!(error, LoadError::UngrantedImport { .. }),
        "{message}"
    );
    assert_eq!(
        message,
        "plugin `foreign` imports something Claimsmith does not grant: `test:foreign/oracle`, which is neither WASI (`wasi:*`) nor the Claimsmith contract (`claimsmith:plugin/*`)"
    );
}

#[test]
fn a_missing_plugin_file_fails_the_start_naming_the_path() {
    let setup = Setup::new();
    let path = setup.data_dir().join("nowhere.wasm");
    let config_path = setup.write();
    let text = std::fs::read_to_string(&config_path).unwrap()
        + &format!("\n[plugins.ghost]\npath = {path:?}\nworld = \"post-login-action\"\n");
    std::fs::write(&config_path, text).unwrap();
    let config = Config::load(&config_path).unwrap();
    let http = claimsmith::capabilities::http::OutboundHttp::new().unwrap();
    let error = load_error(claimsmith::pipeline::Pipeline::new(config, http));
    assert!(matches!(error, LoadError::Read { .. }));
    assert!(error.to_string().contains("nowhere.wasm"), "{error}");
}

#[test]
fn a_file_that_is_not_a_component_fails_the_start() {
    let setup = Setup::new();
    let bogus = setup.data_dir().with_file_name("bogus.wasm");
    std::fs::write(&bogus, b"\0asm but not really").unwrap();
    let config_path = setup.write();
    let text = std::fs::read_to_string(&config_path).unwrap()
        + &format!("\n[plugins.bogus]\npath = {bogus:?}\nworld = \"post-login-action\"\n");
    std::fs::write(&config_path, text).unwrap();
    let config = Config::load(&config_path).unwrap();
    let http = claimsmith::capabilities::http::OutboundHttp::new().unwrap();
    let error = load_error(claimsmith::pipeline::Pipeline::new(config, http));
    assert!(matches!(error, LoadError::Compile { .. }), "{error}");
    assert!(error.to_string().starts_with("plugin `bogus`"), "{error}");
}

/// Loads the config at `path`, which must fail on the line `is_the_line`
/// picks, and returns the error.
fn config_error_on_line(
    path: &std::path::Path,
    is_the_line: impl Fn(&str) -> bool,
) -> claimsmith::config::ConfigError {
    let error = Config::load(path).unwrap_err();
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().position(is_the_line).unwrap() + 1;
    assert_eq!(error.line, line, "{error}");
    error
}

#[test]
fn a_bad_config_names_the_file_and_line() {
    let setup = Setup::new()
        .plugin("geo", "geo-claims", "post-login-action", "")
        .action("geo", "sometimes");
    let path = setup.write();
    let error = config_error_on_line(&path, |l| l.contains("sometimes"));
    let line = error.line;
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:{line}:", path.display())),
        "{error}"
    );
    assert!(error.message.contains("sometimes"), "{error}");
}

#[test]
fn compiled_plugins_are_cached_by_digest_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("claimsmith.toml");
    std::fs::write(
        &config_path,
        format!(
            "issuer = \"https://login.example.com\"\n[plugins.geo]\npath = {:?}\nworld = \"post-login-action\"\n",
            plugin_wasm("geo-claims")
        ),
    )
    .unwrap();
    let start = || {
        let config = Config::load(&config_path).unwrap();
        let http = claimsmith::capabilities::http::OutboundHttp::new().unwrap();
        claimsmith::pipeline::Pipeline::new(config, http).unwrap()
    };
    drop(start());
    let cache = dir.path().join("data/compile-cache");
    // Compiled plugins, beside the cache's key.
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let written = std::fs::metadata(&entries[0]).unwrap().modified().unwrap();
    drop(start());
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().modified().unwrap(),
        written,
        "reused, not rewritten"
    );
    // A corrupt entry costs a compile, not a failed start, and is rewritten.
    std::fs::write(&entries[0], b"garbage").unwrap();
    drop(start());
    assert!(
        std::fs::metadata(&entries[0]).unwrap().len() > 1000,
        "rewritten with the compiled plugin"
    );
}

fn sha256_of(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn a_plugin_pinned_to_its_own_hash_loads_and_reports_it() {
    let hash = sha256_of(&plugin_wasm("geo-claims"));
    let pipeline = Setup::new()
        .plugin(
            "geo",
            "geo-claims",
            "post-login-action",
            &format!("sha256 = \"{}\"", hash.to_uppercase()),
        )
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pipeline.plugins()["geo"].sha256(), hash);
}

#[test]
fn a_plugin_file_other_than_the_pinned_build_fails_the_start() {
    // roles-claim's file where geo-claims's hash is pinned: a changed build.
    let pinned = sha256_of(&plugin_wasm("geo-claims"));
    let actual = sha256_of(&plugin_wasm("roles-claim"));
    let error = load_error(
        Setup::new()
            .plugin(
                "geo",
                "roles-claim",
                "post-login-action",
                &format!("sha256 = \"{pinned}\""),
            )
            .start(),
    );
    let message = error.to_string();
    assert!(
        matches!(error, LoadError::NotThePinnedBuild { .. }),
        "{message}"
    );
    assert!(message.starts_with("plugin `geo`:"), "{message}");
    assert!(
        message.contains(&format!(
            "has sha256 {actual}, but the config pins {pinned}"
        )),
        "{message}"
    );
}

#[test]
fn a_pin_that_is_not_a_sha256_fails_the_config_at_its_line() {
    let setup = Setup::new().plugin(
        "geo",
        "geo-claims",
        "post-login-action",
        "sha256 = \"d41d8cd98f00b204\"",
    );
    let path = setup.write();
    let error = config_error_on_line(&path, |l| l.starts_with("sha256"));
    assert!(
        error
            .message
            .contains("plugin `geo`: sha256 must be 64 hexadecimal digits"),
        "{error}"
    );
}

#[test]
fn check_prints_the_hash_of_each_plugin() {
    let setup = Setup::new().plugin("geo", "geo-claims", "post-login-action", "");
    let path = setup.write();
    let output =
        std::process::Command::new(std::path::PathBuf::from(env!("CARGO_BIN_EXE_claimsmith")))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hash = sha256_of(&plugin_wasm("geo-claims"));
    assert!(
        stdout
            .lines()
            .any(|line| line == format!("  geo: sha256 {hash}")),
        "{stdout}"
    );
    // `check` then `serve`: the service's keys come from its key ring,
    // and no key file of `check`'s may be left for it to import.
    assert!(
        !setup.data_dir().join("keys").exists(),
        "check wrote {}",
        setup.data_dir().join("keys").display()
    );
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_fails_the_config_at_its_line() {
    let setup = Setup::new();
    let path = setup.write();
    let text = std::fs::read_to_string(&path).unwrap()
        + "\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.internal\"]\n";
    std::fs::write(&path, &text).unwrap();
    let error = config_error_on_line(&path, |l| l.starts_with("trusted_proxies"));
    assert!(
        error
            .message
            .contains("trusted proxy `proxy.internal` is neither an IP address nor a network"),
        "{error}"
    );
}
