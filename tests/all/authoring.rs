//! What plugin authors run besides the tests: `claimsmith inspect` on real
//! builds in every language, and its refusal of what is not a plugin;
//! `claimsmith new`'s checks. (The scaffolds themselves are generated,
//! built and tested by `cargo xtask test`, through the command.)

use crate::support::language_plugin_wasm;
use claimsmith::engine::World;
use claimsmith::inspect::inspect;
use claimsmith::scaffold::SourceLanguage;

#[test]
fn inspect_names_world_and_source_language_of_every_build() {
    // Inspecting compiles without the cache (it reports the compile time):
    // one world per language keeps this test short.
    for (language, expected, plugin, world) in [
        ("rust", "Rust", "m2m-guard", World::CredentialsExchange),
        ("js", "JavaScript", "geo-claims", World::PostLoginAction),
        ("python", "Python", "okta-userinfo", World::ProfileFetcher),
    ] {
        {
            let path = language_plugin_wasm(language, plugin);
            let inspection = inspect(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert_eq!(inspection.world, world, "{}", path.display());
            assert_eq!(
                inspection.language.as_deref(),
                Some(expected),
                "{}",
                path.display()
            );
            assert_eq!(
                inspection.size_bytes,
                std::fs::metadata(&path).unwrap().len()
            );
            assert_eq!(inspection.sha256.len(), 64);
            assert!(
                inspection
                    .imports
                    .iter()
                    .any(|i| i.starts_with("claimsmith:plugin/")),
                "{:?}",
                inspection.imports
            );
        }
    }
}

#[test]
fn inspect_refuses_what_is_not_a_claimsmith_plugin() {
    let dir = tempfile::tempdir().unwrap();
    // The empty component: valid, and implements neither world.
    let empty_component = dir.path().join("empty.wasm");
    std::fs::write(&empty_component, b"\0asm\x0d\0\x01\0").unwrap();
    let error = format!("{:#}", inspect(&empty_component).unwrap_err());
    assert!(
        error.contains("is not a Claimsmith plugin: it exports []"),
        "{error}"
    );

    // A core module is not a component.
    let core_module = dir.path().join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    let error = format!("{:#}", inspect(&core_module).unwrap_err());
    assert!(
        error.contains("is not a WebAssembly component Claimsmith can run"),
        "{error}"
    );

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not wasm at all").unwrap();
    assert!(inspect(&text).is_err());
    assert!(inspect(&dir.path().join("missing.wasm")).is_err());
}

#[test]
fn new_refuses_bad_names_and_folders_that_are_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "Upper", "9lives", "with space", "under_score"] {
        let error = claimsmith::scaffold::create(
            World::PostLoginAction,
            SourceLanguage::JavaScript,
            bad,
            &dir.path().join("x"),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("is not a plugin name"),
            "{bad}: {error}"
        );
    }
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let error = claimsmith::scaffold::create(
        World::ProfileFetcher,
        SourceLanguage::Python,
        "my-fetcher",
        dir.path(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("is not empty"), "{error}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn new_writes_a_project_claimsmith_build_recognises() {
    for source in [
        SourceLanguage::Rust,
        SourceLanguage::JavaScript,
        SourceLanguage::TypeScript,
        SourceLanguage::Python,
    ] {
        for world in [
            World::PostLoginAction,
            World::ProfileFetcher,
            World::CredentialsExchange,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let project_dir = dir.path().join("my-plugin");
            claimsmith::scaffold::create(world, source, "my-plugin", &project_dir).unwrap();
            let projects = claimsmith::build::discover(std::slice::from_ref(&project_dir)).unwrap();
            let language = source.built_as();
            assert_eq!(projects.len(), 1, "{language} {world}");
            assert_eq!(projects[0].name, "my-plugin");
            assert_eq!(projects[0].language, language);
            assert!(
                project_dir
                    .join("goldens")
                    .read_dir()
                    .unwrap()
                    .next()
                    .is_some()
            );
            assert!(project_dir.join("README.md").exists());
        }
    }
}

/// Builds the JavaScript project `files` describe with the toolchain
/// `cargo xtask test` installed; the build's error text when it fails.
fn javascript_build_error(files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    for (relative, text) in files {
        let path = project.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let error = crate::support::build_project(&project, &dir.path().join("out")).unwrap_err();
    format!("{error:#}")
}

fn package(world: &str, main: &str, dependencies: &str) -> String {
    format!(
        r#"{{ "name": "p", "main": "{main}", "dependencies": {{ {dependencies} }}, "claimsmith": {{ "world": "{world}" }} }}"#
    )
}

#[test]
fn a_dependency_that_needs_a_node_built_in_fails_the_build_naming_both() {
    let error = javascript_build_error(&[
        (
            "package.json",
            &package(
                "post-login-action",
                "action.js",
                r#""reads-files": "file:./vendor/reads-files""#,
            ),
        ),
        (
            "action.js",
            "const read = require('reads-files');\nexports.onExecutePostLogin = async () => read();\n",
        ),
        (
            "vendor/reads-files/package.json",
            r#"{ "name": "reads-files", "version": "1.0.0", "main": "index.js" }"#,
        ),
        (
            "vendor/reads-files/index.js",
            "const fs = require('node:fs');\nmodule.exports = () => fs.readFileSync('/etc/passwd');\n",
        ),
    ]);
    assert!(
        error.contains("the package `reads-files` needs the Node built-in `node:fs`"),
        "{error}"
    );
}

#[test]
fn a_connection_script_that_is_not_one_function_is_refused_at_its_line() {
    let error = javascript_build_error(&[
        ("package.json", &package("profile-fetcher", "script.js", "")),
        (
            "script.js",
            "function (accessToken, ctx, cb) {\n  cb(null, {});\n}\nconsole.log('and more');\n",
        ),
    ]);
    let first = error.lines().next().unwrap_or_default();
    assert!(
        first.contains("project/script.js:4:1: error"),
        "the user's file and line first: {error}"
    );
    assert!(
        error.contains("is read as an Auth0 connection script"),
        "{error}"
    );
}

#[test]
fn a_typescript_error_shows_the_users_file_and_line_first() {
    let error = javascript_build_error(&[
        (
            "package.json",
            &package("post-login-action", "action.ts", ""),
        ),
        (
            "action.ts",
            "import type { Event } from '@auth0/actions/post-login/v3';\n\
             export const onExecutePostLogin = async (event: Event) => {\n  const x: number = ;\n};\n",
        ),
    ]);
    let first = error.lines().next().unwrap_or_default();
    assert!(
        first.contains("project/action.ts:3:"),
        "the user's file and line first: {error}"
    );
}

/// A connection script that calls `cb` twice fails naming that; one that
/// never calls it fails by its timeout, not a trap.
#[tokio::test]
async fn a_connection_script_calling_cb_twice_or_never_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // Each with the error it must fail with.
    let scripts = [
        (
            "cb-twice",
            "function (accessToken, ctx, cb) {\n  cb(null, {});\n  cb(null, {});\n}\n",
            "kind: failed\n    message: the connection script called its callback more than once",
        ),
        (
            "cb-never",
            "function (accessToken, ctx, cb) {\n}\n",
            "kind: limit-exceeded\n    message: plugin `cb-never` exceeded its wall-clock timeout of 5000 ms",
        ),
    ];
    let mut cases = Vec::new();
    for (name, script, error) in scripts {
        let project = dir.path().join(name);
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("s.js"), script).unwrap();
        std::fs::write(project.join("package.json"), package_named(name, "s.js")).unwrap();
        let built = crate::support::build_project(&project, &dir.path().join("out")).unwrap();
        let case = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &case,
            format!(
                "wasm: {:?}\nworld: profile-fetcher\ninput:\n  connection: okta\n  client_id: app\n  upstream: {{ access_token: t, id_token_claims: {{ sub: u }} }}\nexpect:\n  error:\n    {error}\n",
                built.component
            ),
        )
        .unwrap();
        cases.push(case);
    }
    let mut out = Vec::new();
    let summary = claimsmith::golden::run_suite(&cases, &Default::default(), &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(summary.exit_code(), 0, "{out}");
    assert_eq!(summary.results.len(), 2, "{out}");
}

fn package_named(name: &str, main: &str) -> String {
    format!(
        r#"{{ "name": "{name}", "main": "{main}", "claimsmith": {{ "world": "profile-fetcher" }} }}"#
    )
}

#[test]
fn a_dependency_that_cannot_be_installed_fails_the_build_naming_it() {
    let error = javascript_build_error(&[
        (
            "package.json",
            &package(
                "post-login-action",
                "action.js",
                r#""not-there": "file:./vendor/not-there""#,
            ),
        ),
        (
            "action.js",
            "exports.onExecutePostLogin = async () => {};\n",
        ),
    ]);
    assert!(
        error.contains("cannot install the npm dependencies of p (not-there)"),
        "{error}"
    );
}
