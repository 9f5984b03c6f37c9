//! What plugin authors run besides the tests: `claimsmith inspect` on real
//! builds in every language, and its refusal of what is not a plugin;
//! `claimsmith new`'s checks. (The scaffolds themselves are generated,
//! built and tested by `cargo xtask test`, through the command.)

use crate::support::language_plugin_wasm;
use claimsmith::build::Language;
use claimsmith::engine::World;
use claimsmith::inspect::inspect;

#[test]
fn inspect_names_world_and_source_language_of_every_build() {
    // Inspecting compiles without the cache (it reports the compile time):
    // one world per language keeps this test short.
    for (language, expected, plugin, world) in [
        ("rust", "Rust", "okta-userinfo", World::ProfileFetcher),
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
            Language::JavaScript,
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
        Language::Python,
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
    for language in [Language::Rust, Language::JavaScript, Language::Python] {
        for world in [World::PostLoginAction, World::ProfileFetcher] {
            let dir = tempfile::tempdir().unwrap();
            let project_dir = dir.path().join("my-plugin");
            claimsmith::scaffold::create(world, language, "my-plugin", &project_dir).unwrap();
            let projects = claimsmith::build::discover(std::slice::from_ref(&project_dir)).unwrap();
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
