//! Property tests for every parser that takes outside input: the config, a
//! golden case, a `run --input` file, the JSON a plugin hands back, and the
//! authorize and token requests of the running service. None may panic, and
//! every input it refuses gets an error that says where.

use std::path::Path;

use claimsmith::config::Config;
use claimsmith::golden::Case;
use claimsmith::replay::{RecordedLogin, parse_yaml};
use proptest::prelude::*;

use crate::support::measuring;

const GOOD_CONFIG: &str = r#"issuer = "https://login.example.com"

[plugins.geo]
path = "geo.wasm"
world = "post-login-action"
allowed_origins = ["https://api.example.com"]
limits = { fuel = 5000, memory_mib = 8, timeout_ms = 250 }

[[connections]]
name = "okta"

[[clients]]
client_id = "app"
client_secret = { value = "a-long-enough-secret" }
redirect_uris = ["https://app.example.com/cb"]
web_origins = ["https://app.example.com"]

[[actions]]
plugin = "geo"
"#;

/// A shipped golden case, so that the mutations start from what the parser
/// takes (see `the_documents_mutated_are_valid`).
const GOOD_CASE: &str = include_str!("../../plugins/geo-claims/goldens/claim-set.yaml");

#[test]
fn the_documents_mutated_are_valid() {
    let config = Config::parse(Path::new("/etc/claimsmith/claimsmith.toml"), GOOD_CONFIG);
    assert!(config.is_ok(), "{:?}", config.err());
    let case = parse_yaml::<Case>(Path::new("cases/some.yaml"), GOOD_CASE);
    assert!(case.is_ok(), "{:?}", case.err());
}

/// Text near a valid document: lines dropped, doubled or cut, bytes replaced.
fn mutated(document: &'static str) -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = document.lines().collect();
    let count = lines.len();
    proptest::collection::vec(
        (
            0..count,
            0u8..4,
            any::<char>(),
            any::<prop::sample::Index>(),
        ),
        1..6,
    )
    .prop_map(move |edits| {
        let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        for (line, kind, character, at) in edits {
            let line = line % lines.len().max(1);
            if lines.is_empty() {
                break;
            }
            match kind {
                0 => {
                    lines.remove(line);
                }
                1 => {
                    let copy = lines[line].clone();
                    lines.insert(line, copy);
                }
                2 => {
                    let chars: Vec<char> = lines[line].chars().collect();
                    let cut = at.index(chars.len() + 1);
                    lines[line] = chars[..cut].iter().collect();
                }
                _ => {
                    let mut chars: Vec<char> = lines[line].chars().collect();
                    if chars.is_empty() {
                        chars.push(character);
                    } else {
                        let i = at.index(chars.len());
                        chars[i] = character;
                    }
                    lines[line] = chars.into_iter().collect();
                }
            }
        }
        lines.join("\n")
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~\n]{0,300}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_config_parser_never_panics_and_locates_what_it_refuses(
        text in prop_oneof![mutated(GOOD_CONFIG), text()]
    ) {
        let _heavy = measuring::heavy_blocking();
        if let Err(error) = Config::parse(Path::new("/etc/claimsmith/claimsmith.toml"), &text) {
            let shown = error.to_string();
            prop_assert!(shown.starts_with("/etc/claimsmith/claimsmith.toml"), "{shown}");
            prop_assert!(!error.message.is_empty());
            prop_assert!(error.line >= 1 && error.line <= text.lines().count().max(1) + 1, "{shown}");
        }
    }

    #[test]
    fn the_case_and_input_parsers_never_panic_and_name_the_file(
        text in prop_oneof![mutated(GOOD_CASE), text()]
    ) {
        let _heavy = measuring::heavy_blocking();
        let path = Path::new("cases/some.yaml");
        if let Err(error) = parse_yaml::<Case>(path, &text) {
            prop_assert!(error.starts_with("cases/some.yaml: "), "{error}");
        }
        if let Err(error) = parse_yaml::<RecordedLogin>(path, &text) {
            prop_assert!(error.starts_with("cases/some.yaml: "), "{error}");
        }
    }

    #[test]
    fn a_profile_from_a_plugin_is_an_object_or_a_clear_error(text in prop_oneof![
        text(),
        "\\{\"[a-z]{0,5}\": ?(1|\"x\"|null|\\[\\]|\\{\\})\\}",
        Just("[1, 2]".to_owned()),
    ]) {
        let _heavy = measuring::heavy_blocking();
        match claimsmith::engine::profile_from_json(&text) {
            Ok(profile) => {
                let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(serde_json::Value::Object(profile), reparsed);
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
}
