//! The golden runner's own behaviour: it passes what holds, and fails, with a
//! readable reason, what does not.

use std::path::{Path, PathBuf};

use crate::support::golden_options;
use crate::support::{plugin_wasm, root};
use claimsmith::golden::{SuiteOptions, Summary, run_suite};

async fn run(paths: &[PathBuf], options: &SuiteOptions) -> (Summary, String) {
    let mut out = Vec::new();
    let summary = run_suite(paths, options, &mut out)
        .await
        .expect("the suite runs");
    (summary, String::from_utf8(out).expect("UTF-8 output"))
}

/// Runs the one case at `path`, which must be refused before it runs
/// (exit status 2); returns the output, which says why.
async fn refused(path: &Path) -> String {
    let (summary, out) = run_one(path).await;
    assert_eq!(summary.exit_code(), 2, "{out}");
    assert!(summary.results.is_empty(), "nothing ran: {out}");
    out
}

/// Runs the one case at `path` with default options.
async fn run_one(path: &Path) -> (Summary, String) {
    run(&[path.to_owned()], &golden_options()).await
}

fn must_fail(name: &str) -> PathBuf {
    // The cases name their plugin by path: make sure it is built.
    plugin_wasm("geo-claims");
    plugin_wasm("okta-userinfo");
    root().join("tests/goldens/must-fail").join(name)
}

#[tokio::test]
async fn the_shipped_goldens_pass() {
    plugin_wasm("okta-userinfo");
    let (summary, out) = run(
        &[root().join("plugins"), root().join("examples")],
        &golden_options(),
    )
    .await;
    assert_eq!(summary.exit_code(), 0, "{out}");
    assert!(
        out.ends_with(&format!("{} passed, 0 failed\n", summary.passed())),
        "{out}"
    );
    // Every case file shipped ran: none was skipped or left unfound.
    let mut shipped = Vec::new();
    for dir in ["plugins", "examples"] {
        collect_case_files(&root().join(dir), &mut shipped);
    }
    shipped.sort();
    let mut ran: Vec<std::path::PathBuf> = summary
        .results
        .iter()
        .map(|result| result.file.canonicalize().unwrap())
        .collect();
    ran.sort();
    ran.dedup();
    assert_eq!(ran, shipped, "{out}");
}

/// The `.yaml` files under the `goldens` folders below `dir`.
fn collect_case_files(dir: &std::path::Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "node_modules" && name != "target" {
            collect_case_files(&path, into);
        } else if name.ends_with(".yaml")
            && path
                .parent()
                .is_some_and(|parent| parent.ends_with("goldens"))
        {
            into.push(path.canonicalize().unwrap());
        }
    }
}

#[tokio::test]
async fn a_wrong_expectation_fails_with_a_unified_diff() {
    let (summary, out) = run(&[must_fail("wrong-expectation.yaml")], &golden_options()).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert_eq!(summary.results[0].failures.len(), 1, "one reason: {out}");
    assert!(out.contains("FAIL wrong country expected"), "{out}");
    assert!(out.contains("expect.claims differs:"), "{out}");
    assert!(out.contains("--- expected\n    +++ actual\n"), "{out}");
    assert!(
        out.contains("-    \"geo_ip_country\": \"DE\"\n    +    \"geo_ip_country\": \"NZ\""),
        "{out}"
    );
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
    assert!(!out.contains("\x1b["), "no colour unless asked");
}

#[tokio::test]
async fn diffs_are_coloured_when_asked() {
    let options = SuiteOptions {
        color: true,
        ..golden_options()
    };
    let (_, out) = run(&[must_fail("wrong-expectation.yaml")], &options).await;
    assert!(
        out.contains("\x1b[31m-    \"geo_ip_country\": \"DE\""),
        "{out}"
    );
}

/// Runs one must-fail case and returns its one reason to fail.
async fn only_failure(case: &str) -> String {
    let (summary, out) = run(&[must_fail(case)], &golden_options()).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert_eq!(
        summary.results[0].failures.len(),
        1,
        "one reason only: {out}"
    );
    summary.results[0].failures[0].clone()
}

#[tokio::test]
async fn a_request_no_exchange_matches_fails_and_is_shown() {
    let failure = only_failure("unmatched-request.yaml").await;
    assert!(
        failure.starts_with("request matched no exchange: GET https://example.okta.com/v1/userinfo\n  Authorization: Bearer at\n"),
        "the request, headers included: {failure}"
    );
    assert!(
        failure.ends_with("(nearest exchange `GET https://example.okta.com/v1/userinfo` differs in header authorization: expected `Bearer other`, got `Bearer at`)"),
        "{failure}"
    );
}

#[tokio::test]
async fn an_exchange_never_requested_fails() {
    assert_eq!(
        only_failure("unrequested-exchange.yaml").await,
        "exchange never requested (mark it `optional: true` if that is fine): GET https://example.okta.com/v1/userinfo"
    );
}

#[tokio::test]
async fn an_exceeded_fuel_cap_fails() {
    let failure = only_failure("fuel-cap.yaml").await;
    assert!(failure.ends_with("more than max_fuel 10"), "{failure}");
}

/// A case in a folder of its own, naming the plugin by absolute path.
fn case_in_tempdir(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.yaml");
    let text = body.replace("GEO_WASM", &plugin_wasm("geo-claims").display().to_string());
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const GEO_CASE: &str = r#"# A comment the author wrote, kept by --bless.
name: geo blessed
wasm: GEO_WASM
world: post-login-action
input:
  connection: okta
  client_id: app
  upstream:
    access_token: at
    id_token_claims: { sub: u1 }
  profile: { sub: u1, geo_ip_country: FR }
# Expectations below were written before the plugin changed.
expect:
  claims:
    access_token: { geo_ip_country: XX }
    id_token: {}
"#;

#[tokio::test]
async fn bless_rewrites_the_failing_expectation_and_keeps_the_rest() {
    let (_dir, path) = case_in_tempdir(GEO_CASE);
    let before = std::fs::read_to_string(&path).unwrap();
    let options = SuiteOptions {
        bless: true,
        ..golden_options()
    };
    let (summary, out) = run(std::slice::from_ref(&path), &options).await;
    assert_eq!(
        summary.exit_code(),
        1,
        "the blessing run still reports the failure: {out}"
    );
    assert!(out.contains("blessed"), "{out}");

    let after = std::fs::read_to_string(&path).unwrap();
    let head = |text: &str| text[..text.find("expect:").unwrap()].to_owned();
    assert_eq!(
        head(&after),
        head(&before),
        "everything above expect: is untouched"
    );
    assert!(after.contains("geo_ip_country: FR"), "{after}");
    assert!(!after.contains("XX"), "{after}");

    let (summary, out) = run_one(&path).await;
    assert_eq!(
        summary.exit_code(),
        0,
        "the blessed case passes: {out}\n{after}"
    );
}

#[tokio::test]
async fn bless_leaves_passing_cases_alone_unless_all() {
    let (_dir, path) = case_in_tempdir(&GEO_CASE.replace("XX", "FR"));
    let before = std::fs::read_to_string(&path).unwrap();
    let options = SuiteOptions {
        bless: true,
        ..golden_options()
    };
    run(std::slice::from_ref(&path), &options).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

#[tokio::test]
async fn a_malformed_case_names_the_file_and_the_path_inside_it() {
    let (_dir, path) =
        case_in_tempdir(&GEO_CASE.replace("access_token: at\n", "acess_token: at\n"));
    let out = refused(&path).await;
    assert!(out.contains(&format!("ERROR {}", path.display())), "{out}");
    assert!(
        out.contains("input: upstream.acess_token: unknown field"),
        "{out}"
    );
    assert!(out.contains("acess_token"), "{out}");

    let (_dir, path) =
        case_in_tempdir(&GEO_CASE.replace("world: post-login-action\n", "world: 42\n"));
    let out = refused(&path).await;
    assert!(out.contains("world"), "{out}");

    let (_dir, path) = case_in_tempdir("name: [unclosed\n");
    let out = refused(&path).await;
    assert!(
        out.contains("line 1"),
        "a syntax error names its line: {out}"
    );
}

#[tokio::test]
async fn results_are_written_as_json_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let options = SuiteOptions {
        json: true,
        junit: Some(junit.clone()),
        ..golden_options()
    };
    let (_, out) = run(
        &[
            must_fail("wrong-expectation.yaml"),
            must_fail("fuel-cap.yaml"),
        ],
        &options,
    )
    .await;
    let document: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(document["failed"], 2);
    assert_eq!(document["results"][0]["name"], "wrong country expected");
    assert!(document["results"][0]["fuel"].as_u64().unwrap() > 0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"claimsmith\" tests=\"2\" failures=\"2\""),
        "{xml}"
    );
    assert!(xml.contains("<failure"), "{xml}");
}

#[tokio::test]
async fn two_hundred_cases_run_in_parallel_on_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let case = GEO_CASE
        .replace("GEO_WASM", &plugin_wasm("geo-claims").display().to_string())
        .replace("XX", "FR");
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("case-{i:03}.yaml")), &case).unwrap();
    }
    let (summary, out) = run(&[Path::new(dir.path()).to_owned()], &golden_options()).await;
    assert_eq!(summary.exit_code(), 0, "{out}");
    assert_eq!(summary.passed(), 200);
}

/// `--builds`: every case runs once per language folder; a build that
/// behaves differently fails its cases in that language, and so does a
/// missing one. The "impostor" language's geo-claims is the denier test
/// plugin under geo-claims' file name.
#[tokio::test]
async fn each_language_build_is_held_to_the_same_cases() {
    let builds = tempfile::tempdir().unwrap();
    let place = |language: &str, file: &str, from: PathBuf| {
        let dir = builds.path().join(language);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(from, dir.join(file)).unwrap();
    };
    // The case's config also names the connection's profile fetcher.
    for language in ["rust", "impostor"] {
        place(language, "okta-userinfo.wasm", plugin_wasm("okta-userinfo"));
    }
    place("rust", "geo-claims.wasm", plugin_wasm("geo-claims"));
    place("impostor", "geo-claims.wasm", plugin_wasm("test-denier"));
    std::fs::create_dir_all(builds.path().join("missing")).unwrap();

    let case = root().join("plugins/geo-claims/goldens/claim-set.yaml");
    let options = SuiteOptions {
        builds: Some(builds.path().to_owned()),
        ..golden_options()
    };
    let (summary, out) = run(&[case], &options).await;
    assert_eq!(summary.results.len(), 3, "{out}");
    assert_eq!(summary.exit_code(), 1, "{out}");
    let result = |language: &str| {
        summary
            .results
            .iter()
            .find(|r| r.language.as_deref() == Some(language))
            .unwrap_or_else(|| panic!("no {language} result:\n{out}"))
    };
    assert!(result("rust").passed, "{out}");
    let impostor = result("impostor");
    assert!(!impostor.passed, "{out}");
    assert!(
        impostor
            .failures
            .iter()
            .any(|f| f.contains("expect.claims differs")),
        "{out}"
    );
    let missing = result("missing");
    assert!(!missing.passed, "{out}");
    assert!(
        missing.failures[0].contains("no missing build of plugin `geo-claims`"),
        "{out}"
    );
    assert!(
        out.contains("pass [rust] geo-claims sets geo_ip_country"),
        "{out}"
    );
    assert!(
        out.contains("FAIL [impostor] geo-claims sets geo_ip_country"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 2 failed\n"), "{out}");
}

#[tokio::test]
async fn builds_without_language_folders_are_an_error_not_a_pass() {
    let builds = tempfile::tempdir().unwrap();
    let options = SuiteOptions {
        builds: Some(builds.path().to_owned()),
        ..golden_options()
    };
    let (summary, out) = run(&[root().join("plugins/geo-claims/goldens")], &options).await;
    assert_eq!(summary.exit_code(), 2, "{out}");
    assert!(out.contains("no language folders of builds"), "{out}");
    assert!(summary.results.is_empty(), "{out}");
}

/// GEO_CASE (which mints) with its `expect:` block replaced by `expect`.
fn geo_case_expecting(expect: &str) -> (tempfile::TempDir, PathBuf) {
    let head = GEO_CASE.split("expect:\n").next().unwrap();
    case_in_tempdir(&format!("{head}expect:\n{expect}"))
}

/// Expectations that once passed whatever happened: each is now refused
/// when the case is read (exit 2), with the path to the mistake.
#[tokio::test]
async fn empty_or_mistyped_expectations_are_errors_not_passes() {
    for (expect, reason) in [
        ("  error: ~\n", "expect.error: is empty"),
        ("  error: {}\n", "expect.error.kind: missing"),
        (
            "  error: { kind: failed, mesage: boom }\n",
            "expect.error.mesage: unknown key (expected kind, message)",
        ),
        (
            "  error: { kind: faild }\n",
            "expect.error.kind: `faild` is not a kind",
        ),
        ("  denied: {}\n", "expect.denied.reason: missing"),
        ("  denied: ~\n", "expect.denied: is empty"),
        (
            "  denied: { reason: no, plugn: geo-claims }\n",
            "expect.denied.plugn: unknown key",
        ),
        (
            "  claims: { acess_token: {} }\n",
            "expect.claims.acess_token: unknown key",
        ),
        ("  profile: ~\n", "expect.profile: is empty"),
        ("  scopes: openid\n", "expect.scopes: must be a list"),
    ] {
        let (_dir, path) = geo_case_expecting(expect);
        let out = refused(&path).await;
        assert!(out.contains(reason), "{expect}: wanted `{reason}` in {out}");
    }
}

#[tokio::test]
async fn any_reason_matches_a_denial_and_nothing_else() {
    // GEO_CASE mints: a denial expected with any reason must fail.
    let (_dir, path) = geo_case_expecting("  denied: { any_reason: true }\n");
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert!(out.contains("expect.denied differs"), "{out}");

    let denier = plugin_wasm("test-denier").display().to_string();
    let (_dir, path) = case_in_tempdir(
        &GEO_CASE
            .replace("GEO_WASM", &denier)
            .split("expect:\n")
            .next()
            .map(|head| format!("{head}expect:\n  denied: {{ any_reason: true }}\n"))
            .unwrap(),
    );
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 0, "{out}");
}

/// A profile-fetcher case that also gives `input.profile` skips the fetcher:
/// it used to pass with 0 fuel.
#[tokio::test]
async fn a_case_whose_plugin_did_not_run_fails() {
    let case = format!(
        r#"name: fetcher skipped
config: {config:?}
plugin: okta-userinfo
input:
  connection: okta
  client_id: demo-app
  upstream:
    access_token: at-ada
    id_token_claims: {{ sub: 00u1ada }}
  profile: {{ sub: 00u1ada, geo_ip_country: NZ }}
expect:
  claims:
    access_token: {{ geo_ip_country: NZ }}
    id_token: {{}}
"#,
        config = root().join("examples/okta/claimsmith.toml")
    );
    let (_dir, path) = case_in_tempdir(&case);
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert!(
        out.contains("plugin `okta-userinfo` did not run (the case gives `input.profile`, so the profile fetcher is skipped)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_run_that_finds_no_case_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let out = refused(empty.path()).await;
    assert!(out.contains("no case found in"), "{out}");
}

/// With last-one-wins, the second `access_token` below would silently
/// replace the first: the case is refused instead.
#[tokio::test]
async fn a_duplicate_key_is_an_error() {
    let (_dir, path) = geo_case_expecting(
        "  claims:\n    access_token: { geo_ip_country: FR }\n    access_token: { geo_ip_country: XX }\n    id_token: {}\n",
    );
    let out = refused(&path).await;
    assert!(
        out.contains("duplicate entry with key \"access_token\""),
        "{out}"
    );
}

/// A request to an origin the plugin is not granted never reaches the
/// canned answers; the case's result shows it, from either HTTP path.
#[tokio::test]
async fn requests_the_policy_refused_are_reported() {
    for language in ["rust", "js"] {
        let wasm = crate::support::language_plugin_wasm(language, "okta-userinfo");
        let case = format!(
            r#"name: userinfo at an ungranted origin
wasm: {wasm:?}
world: profile-fetcher
allowed_origins: [https://idp.example.com]
options: {{ userinfo_url: "https://elsewhere.example.com/userinfo?tenant=t1" }}
input:
  connection: okta
  client_id: app
  upstream:
    access_token: at
    id_token_claims: {{ sub: u1 }}
expect:
  error: {{ kind: failed }}
"#
        );
        let (_dir, path) = case_in_tempdir(&case);
        let (summary, out) = run_one(&path).await;
        assert_eq!(summary.exit_code(), 0, "{language}: {out}");
        assert!(
            out.contains(
                "note: request refused by the plugin's HTTP policy: GET https://elsewhere.example.com/userinfo?tenant=t1: not allowed: origin https://elsewhere.example.com:443 is not granted"
            ),
            "{language}: {out}"
        );
    }
}

#[tokio::test]
async fn junit_counts_every_testcase_names_its_folder_and_says_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let (_case_dir, colourful) = case_in_tempdir(
        &GEO_CASE.replace("name: geo blessed", "name: \"ansi \\e[31mred\\e[0m case\""),
    );
    let unreadable = dir.path().join("broken.yaml");
    std::fs::write(&unreadable, "name: [unclosed\n").unwrap();
    let options = SuiteOptions {
        junit: Some(junit.clone()),
        ..golden_options()
    };
    let (summary, out) = run(&[colourful.clone(), unreadable], &options).await;
    assert_eq!(summary.exit_code(), 2, "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        xml.matches("<testcase ").count(),
        2,
        "one per case and per unreadable file: {xml}"
    );
    assert!(
        xml.contains("tests=\"2\" failures=\"1\" errors=\"1\""),
        "{xml}"
    );
    let folder = colourful.parent().unwrap().display().to_string();
    assert!(xml.contains(&format!("classname=\"{folder}\"")), "{xml}");
    assert!(xml.contains("name=\"ansi [31mred[0m case\""), "{xml}");
    assert!(!xml.contains('\u{1b}'), "no control characters: {xml}");
    assert!(
        xml.contains("<failure message=\"expect.claims differs:\">"),
        "{xml}"
    );
}

/// An action skipped under `on_error = "continue"` changed nothing: a
/// whole-chain case fails on it unless it says it expects it.
#[tokio::test]
async fn a_skipped_action_fails_the_case_unless_expected() {
    let setup = crate::support::Setup::new().actions(&[
        ("trapper", "test-trapper", "continue", ""),
        ("geo", "geo-claims", "fail", ""),
    ]);
    let config = setup.write();
    let case = |expect_skipped: &str| {
        format!(
            r#"name: chain with a skipped action
config: {config:?}
input:
  connection: okta
  client_id: app
  upstream:
    access_token: at
    id_token_claims: {{ sub: u1 }}
  profile: {{ sub: u1, geo_ip_country: NZ }}
expect:
  claims:
    access_token: {{ geo_ip_country: NZ }}
    id_token: {{}}
{expect_skipped}"#
        )
    };
    let (_dir, path) = case_in_tempdir(&case(""));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert_eq!(summary.results[0].failures.len(), 1, "{out}");
    assert!(
        summary.results[0].failures[0]
            .starts_with("action `trapper` was skipped under on_error = \"continue\""),
        "{out}"
    );

    let (_dir, path) = case_in_tempdir(&case("  skipped: [trapper]\n"));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 0, "{out}");

    // Expecting a skip that does not happen fails too.
    let (_dir, path) = case_in_tempdir(&case("  skipped: [geo]\n"));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert!(out.contains("expect.skipped differs"), "{out}");
}

/// `--bless` rewrites expectation diffs only: a case that failed for
/// another reason, or whose outcome changed kind, is left as it was, with
/// the reason said; `--bless-all` accepts a change of kind and says so.
#[tokio::test]
async fn bless_never_hides_a_regression() {
    let bless = SuiteOptions {
        bless: true,
        ..golden_options()
    };
    // Failed for another reason: a fuel cap.
    let (_dir, path) = case_in_tempdir(&GEO_CASE.replace(
        "world: post-login-action\n",
        "world: post-login-action\nmax_fuel: 10\n",
    ));
    let before = std::fs::read_to_string(&path).unwrap();
    let (_, out) = run(std::slice::from_ref(&path), &bless).await;
    assert!(
        out.contains("it failed for another reason than its expectations: used"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    // Minted where an error was expected: a change of outcome kind.
    let (_dir, path) = geo_case_expecting("  error: { kind: trapped }\n");
    let before = std::fs::read_to_string(&path).unwrap();
    let (_, out) = run(std::slice::from_ref(&path), &bless).await;
    assert!(
        out.contains("it expected an error and got minted tokens; use --bless-all"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    let bless_all = SuiteOptions {
        bless_all: true,
        ..golden_options()
    };
    let (_, out) = run(std::slice::from_ref(&path), &bless_all).await;
    assert!(out.contains("outcome changed in"), "{out}");
    assert!(out.contains("an error -> minted tokens"), "{out}");
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 0, "{out}");
}

#[tokio::test]
async fn bless_with_json_keeps_stdout_a_json_document_and_leaves_json_cases_alone() {
    let dir = tempfile::tempdir().unwrap();
    let yaml_case = dir.path().join("case.yaml");
    std::fs::write(
        &yaml_case,
        GEO_CASE.replace("GEO_WASM", &plugin_wasm("geo-claims").display().to_string()),
    )
    .unwrap();
    // The same case as JSON (JSON is YAML): never rewritten as YAML.
    let json_case = dir.path().join("case.json");
    let document = serde_json::json!({
        "name": "geo as JSON",
        "wasm": plugin_wasm("geo-claims"),
        "world": "post-login-action",
        "input": {
            "connection": "okta",
            "client_id": "app",
            "upstream": { "access_token": "at", "id_token_claims": { "sub": "u1" } },
            "profile": { "sub": "u1", "geo_ip_country": "FR" }
        },
        "expect": { "claims": { "access_token": { "geo_ip_country": "XX" }, "id_token": {} } }
    });
    let json_text = serde_json::to_string_pretty(&document).unwrap();
    std::fs::write(&json_case, &json_text).unwrap();
    let options = SuiteOptions {
        bless: true,
        json: true,
        ..golden_options()
    };
    let (summary, out) = run(&[yaml_case.clone(), json_case.clone()], &options).await;
    assert_eq!(summary.results.len(), 2);
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON alone");
    assert_eq!(parsed["failed"], 2);
    assert_eq!(std::fs::read_to_string(&json_case).unwrap(), json_text);
    assert!(
        std::fs::read_to_string(&yaml_case)
            .unwrap()
            .contains("geo_ip_country: FR")
    );
}

/// A case that gives its plugin's secrets loads a config whose secrets come
/// from an environment CI does not have; without them the config fails.
#[tokio::test]
async fn a_case_with_its_own_secrets_needs_none_of_the_configs() {
    let setup = crate::support::Setup::new().actions(&[(
        "echo",
        "test-echo",
        "fail",
        "secrets = { api_key = { env = \"CLAIMSMITH_TEST_NEVER_SET\" } }",
    )]);
    let config = setup.write();
    let case = |secrets: &str| {
        format!(
            r#"name: echo with the case's secret
config: {config:?}
plugin: echo
{secrets}input:
  connection: okta
  client_id: app
  upstream:
    access_token: at
    id_token_claims: {{ sub: u1 }}
  profile: {{ sub: u1 }}
expect:
  user_metadata: {{ echo_seen: true }}
  claims: {{ access_token: {{}}, id_token: {{}} }}
"#
        )
    };
    let (_dir, path) = case_in_tempdir(&case("secrets: { api_key: from-the-case }\n"));
    let (summary, out) = run_one(&path).await;
    // It loads and runs; the only difference is the claims, which show the
    // plugin got the case's secret.
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert_eq!(summary.results[0].failures.len(), 1, "{out}");
    assert!(out.contains("expect.claims differs"), "{out}");
    assert!(out.contains("+    \"has_api_key\": true"), "{out}");
    assert!(!out.contains("CLAIMSMITH_TEST_NEVER_SET"), "{out}");

    let (_dir, path) = case_in_tempdir(&case(""));
    let out = refused(&path).await;
    assert!(out.contains("CLAIMSMITH_TEST_NEVER_SET"), "{out}");
}

/// Two actions fetch the same URL. An exchange answers once unless it says
/// `times:`; identical requests can get different answers in order.
#[tokio::test]
async fn exchanges_are_counted_and_answer_in_order() {
    let grant = "allowed_origins = [\"https://api.example.com\"]";
    let setup = crate::support::Setup::new()
        .actions(&[
            ("first", "test-fetcher", "fail", grant),
            ("second", "test-fetcher", "fail", grant),
        ])
        .client(
            "fetching-app",
            "{ fetch_url = \"https://api.example.com/n\" }",
        );
    let config = setup.write();
    let case = |http: &str, expect: &str| {
        format!(
            r#"name: two identical requests
config: {config:?}
input:
  connection: okta
  client_id: fetching-app
  upstream:
    access_token: at
    id_token_claims: {{ sub: u1 }}
  profile: {{ sub: u1 }}
  http:
{http}expect:
{expect}"#
        )
    };
    let once = "    - request: { url: https://api.example.com/n }\n      response: { body: one }\n";
    let minted =
        "  claims: { access_token: { fetched_status: 200, fetched_body: two }, id_token: {} }\n";

    // One exchange, two requests: the second is reported, not answered again.
    let (_dir, path) = case_in_tempdir(&case(once, "  error: { kind: failed }\n"));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert_eq!(summary.results[0].failures.len(), 1, "{out}");
    assert!(out.contains("was used up; add `times:`"), "{out}");

    // `times: 2` answers both.
    let twice = "    - request: { url: https://api.example.com/n }\n      response: { body: two }\n      times: 2\n";
    let (_dir, path) = case_in_tempdir(&case(twice, minted));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 0, "{out}");

    // A sequence: the first unused exchange answers, so the second action
    // (the last to set the claim) sees `two`.
    let sequence = format!(
        "{once}    - request: {{ url: https://api.example.com/n }}\n      response: {{ body: two }}\n"
    );
    let (_dir, path) = case_in_tempdir(&case(&sequence, minted));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 0, "{out}");

    // `times: 3` with two requests: the missing one is reported.
    let thrice = "    - request: { url: https://api.example.com/n }\n      response: { body: two }\n      times: 3\n";
    let (_dir, path) = case_in_tempdir(&case(thrice, minted));
    let (summary, out) = run_one(&path).await;
    assert_eq!(summary.exit_code(), 1, "{out}");
    assert!(
        out.contains("GET https://api.example.com/n (requested 2 of 3 times)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_case_naming_its_languages_runs_only_in_those() {
    let builds = tempfile::tempdir().unwrap();
    for (language, build) in [("rust", "geo-claims"), ("impostor", "test-denier")] {
        let dir = builds.path().join(language);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(plugin_wasm(build), dir.join("geo-claims.wasm")).unwrap();
    }
    let (_dir, case) = case_in_tempdir(&format!(
        "wasm: {:?}\nworld: post-login-action\nlanguages: [rust]\ninput:\n  connection: okta\n  client_id: demo-app\n  upstream: {{ access_token: t, id_token_claims: {{ sub: u }} }}\n  profile: {{ sub: u, geo_ip_country: NZ }}\nexpect:\n  claims:\n    access_token: {{ geo_ip_country: NZ }}\n    id_token: {{}}\n",
        plugin_wasm("geo-claims")
    ));
    let options = SuiteOptions {
        builds: Some(builds.path().to_owned()),
        ..golden_options()
    };
    let (summary, out) = run(&[case], &options).await;
    let languages: Vec<_> = summary.results.iter().map(|r| r.language.clone()).collect();
    assert_eq!(languages, vec![Some("rust".to_owned())], "{out}");
    assert_eq!(summary.exit_code(), 0, "{out}");
}
