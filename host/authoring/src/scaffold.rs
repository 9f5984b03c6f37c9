//! `claimsmith new`: a plugin project to start from, in Rust, JavaScript,
//! TypeScript or Python, on that language's SDK.
//!
//! Owns the templates: the source, its build file, a golden case that passes
//! as generated, and a short README. It writes files only; `claimsmith build`
//! builds them and `claimsmith test` runs the case.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build::Language;
use claimsmith_engine::World;

/// The languages a project is written in: the build's, and TypeScript (a
/// JavaScript project whose `main` is a `.ts` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceLanguage {
    Rust,
    JavaScript,
    TypeScript,
    Python,
}

impl SourceLanguage {
    /// The language its build is, and its components' folder.
    pub fn built_as(self) -> Language {
        match self {
            SourceLanguage::Rust => Language::Rust,
            SourceLanguage::JavaScript | SourceLanguage::TypeScript => Language::JavaScript,
            SourceLanguage::Python => Language::Python,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SourceLanguage::Rust => "Rust",
            SourceLanguage::JavaScript => "JavaScript",
            SourceLanguage::TypeScript => "TypeScript",
            SourceLanguage::Python => "Python",
        }
    }
}

/// Writes a new `world` plugin called `name` in `source` into `dir`, which
/// must not exist yet or be empty. Returns the files written.
pub fn create(
    world: World,
    source: SourceLanguage,
    name: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        bail!(
            "`{name}` is not a plugin name: use lower-case letters, digits and `-`, starting with a letter"
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let module = name.replace('-', "_");
    let mut files: Vec<(String, String)> = match source {
        SourceLanguage::Rust => rust_files(world, name, dir)?,
        SourceLanguage::JavaScript => javascript_files(world, name),
        SourceLanguage::TypeScript => typescript_files(world, name),
        SourceLanguage::Python => python_files(world, name, &module),
    };
    files.push((
        format!("goldens/{}.yaml", golden_name(world)),
        golden(world, source.built_as(), name),
    ));
    files.push(("README.md".to_owned(), readme(world, source, name)));
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A new Rust project's files. Long because most of it is the files' text,
/// kept whole so a reader sees each file as it will be written.
fn rust_files(world: World, name: &str, dir: &Path) -> Result<Vec<(String, String)>> {
    // The SDK is not on crates.io: point at the checkout this binary was built from.
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust");
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    // Where Claimsmith's workspace takes plugins as members
    // (`plugins/*/rust`), the project is one; anywhere else it is a
    // workspace of its own, with the plugin profile `claimsmith build` uses.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let member = std::path::absolute(dir)
        .ok()
        .zip(workspace.canonicalize().ok())
        .is_some_and(|(dir, root)| {
            dir.file_name().is_some_and(|name| name == "rust")
                && dir.parent().and_then(Path::parent) == Some(&root.join("plugins"))
        });
    let standalone = if member {
        String::new()
    } else {
        "\n[workspace]\n\n# Plugins are loaded on every host start: keep them small.\n\
         [profile.plugin]\ninherits = \"release\"\nopt-level = \"s\"\ndebug = false\n\
         strip = true\nlto = true\ncodegen-units = 1\n"
            .to_owned()
    };
    let cargo_toml = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nclaimsmith-sdk = {{ path = {sdk:?} }}\nserde_json = \"1\"\n{standalone}"
    );
    let source = match world {
        World::PostLoginAction => format!(
            r#"//! {name}: a post-login action. It copies the profile's `department`
//! into the access token, and denies users whose email is not verified.

use claimsmith_sdk::Error;
use claimsmith_sdk::action::{{Api, Event}};
use serde_json::Value;

fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), Error> {{
    if event.user.profile.get("email_verified") == Some(&Value::Bool(false)) {{
        api.access().deny("email address not verified");
        return Ok(());
    }}
    if let Some(department) = event.user.profile.get("department") {{
        api.access_token().set_custom_claim("department", department)?;
    }}
    Ok(())
}}

// An action that sends the user away (`api.redirect().send_user_to`) names a
// second function, run when they come back (Auth0's `onContinuePostLogin`):
// `post_login_action!(on_execute_post_login, on_continue_post_login)`.
claimsmith_sdk::post_login_action!(on_execute_post_login);
"#
        ),
        World::ProfileFetcher => format!(
            r#"//! {name}: a profile fetcher. It GETs the connection's `userinfo_url`
//! with the upstream access token and returns the answer as the profile.

use claimsmith_sdk::fetcher::{{FetchContext, Profile}};
use claimsmith_sdk::{{Error, http}};
use serde_json::Value;

fn fetch_user_profile(access_token: &str, ctx: &FetchContext) -> Result<Profile, Error> {{
    let Some(Value::String(url)) = ctx.options.get("userinfo_url") else {{
        return Err("connection option `userinfo_url` is missing".into());
    }};
    let response = http::get(url)
        .header("Authorization", &format!("Bearer {{access_token}}"))
        .send()?;
    if response.status() != 200 {{
        return Err(Error::msg(format!("userinfo answered {{}}", response.status())));
    }}
    let mut profile: Profile = response.json()?;
    profile.insert("connection".to_owned(), Value::from(ctx.connection.clone()));
    Ok(profile)
}}

claimsmith_sdk::profile_fetcher!(fetch_user_profile);
"#
        ),
        World::CredentialsExchange => format!(
            r#"//! {name}: a credentials-exchange action. It puts the machine client's
//! name into the access token it asked for.

use claimsmith_sdk::Error;
use claimsmith_sdk::credentials::{{Api, Event}};

fn on_execute_credentials_exchange(event: &Event, api: &mut Api) -> Result<(), Error> {{
    api.access_token()
        .set_custom_claim("https://example.com/client_name", &event.client.name)?;
    Ok(())
}}

claimsmith_sdk::credentials_exchange!(on_execute_credentials_exchange);
"#
        ),
    };
    Ok(vec![
        ("Cargo.toml".to_owned(), cargo_toml),
        ("src/lib.rs".to_owned(), source),
    ])
}

fn javascript_files(world: World, name: &str) -> Vec<(String, String)> {
    let source = match world {
        World::PostLoginAction => format!(
            r#"// {name}: a post-login action. It copies the profile's `department`
// into the access token, and denies users whose email is not verified.

/**
 * @param {{import('./claimsmith').PostLoginEvent}} event
 * @param {{import('./claimsmith').PostLoginApi}} api
 */
export async function onExecutePostLogin(event, api) {{
  if (event.user.profile.email_verified === false) {{
    api.access.deny('email address not verified');
    return;
  }}
  api.accessToken.setCustomClaim('department', event.user.profile.department);
}}

/**
 * Handler invoked when this action resumes after an external redirect
 * (`api.redirect.sendUserTo`). If `onExecutePostLogin` does not redirect,
 * it can be safely left out.
 *
 * @param {{import('./claimsmith').PostLoginEvent}} event
 * @param {{import('./claimsmith').PostLoginApi}} api
 */
// export async function onContinuePostLogin(event, api) {{
// }}
"#
        ),
        World::ProfileFetcher => format!(
            r#"// {name}: a profile fetcher. It GETs the connection's `userinfo_url`
// with the upstream access token and returns the answer as the profile.

/**
 * @param {{string}} accessToken
 * @param {{import('./claimsmith').FetchUserProfileContext}} ctx
 */
export async function fetchUserProfile(accessToken, ctx) {{
  const url = ctx.options.userinfo_url;
  if (typeof url !== 'string') throw new Error('connection option `userinfo_url` is missing');
  const response = await fetch(url, {{ headers: {{ Authorization: `Bearer ${{accessToken}}` }} }});
  if (response.status !== 200) throw new Error(`userinfo answered ${{response.status}}`);
  const profile = await response.json();
  profile.connection = ctx.connection;
  return profile;
}}
"#
        ),
        World::CredentialsExchange => format!(
            r#"// {name}: a credentials-exchange action. It puts the machine client's
// name into the access token it asked for.

/**
 * @param {{import('./claimsmith').CredentialsExchangeEvent}} event
 * @param {{import('./claimsmith').CredentialsExchangeApi}} api
 */
export async function onExecuteCredentialsExchange(event, api) {{
  api.accessToken.setCustomClaim('https://example.com/client_name', event.client.name);
}}
"#
        ),
    };
    javascript_project(
        name,
        world,
        &format!("{name}.js"),
        source,
        (
            "jsconfig.json",
            "{\n  \"compilerOptions\": { \"checkJs\": true, \"module\": \"es2022\", \"target\": \"es2022\" }\n}\n",
        ),
    )
}

fn typescript_files(world: World, name: &str) -> Vec<(String, String)> {
    let source = match world {
        World::PostLoginAction => format!(
            r#"// {name}: a post-login action. It copies the profile's `department`
// into the access token, and denies users whose email is not verified.

import type {{ PostLoginApi, PostLoginEvent }} from './claimsmith';

export async function onExecutePostLogin(event: PostLoginEvent, api: PostLoginApi): Promise<void> {{
  if (event.user.profile.email_verified === false) {{
    api.access.deny('email address not verified');
    return;
  }}
  api.accessToken.setCustomClaim('department', event.user.profile.department);
}}

// Handler invoked when this action resumes after an external redirect
// (`api.redirect.sendUserTo`). If `onExecutePostLogin` does not redirect,
// it can be safely left out.
// export async function onContinuePostLogin(event: PostLoginEvent, api: PostLoginApi): Promise<void> {{
// }}
"#
        ),
        World::ProfileFetcher => format!(
            r#"// {name}: a profile fetcher. It GETs the connection's `userinfo_url`
// with the upstream access token and returns the answer as the profile.

import type {{ FetchUserProfileContext, Json }} from './claimsmith';

export async function fetchUserProfile(
  accessToken: string,
  ctx: FetchUserProfileContext,
): Promise<Record<string, Json>> {{
  const url = ctx.options.userinfo_url;
  if (typeof url !== 'string') throw new Error('connection option `userinfo_url` is missing');
  const response = await fetch(url, {{ headers: {{ Authorization: `Bearer ${{accessToken}}` }} }});
  if (response.status !== 200) throw new Error(`userinfo answered ${{response.status}}`);
  const profile = (await response.json()) as Record<string, Json>;
  profile.connection = ctx.connection;
  return profile;
}}
"#
        ),
        World::CredentialsExchange => format!(
            r#"// {name}: a credentials-exchange action. It puts the machine client's
// name into the access token it asked for.

import type {{ CredentialsExchangeApi, CredentialsExchangeEvent }} from './claimsmith';

export async function onExecuteCredentialsExchange(
  event: CredentialsExchangeEvent,
  api: CredentialsExchangeApi,
): Promise<void> {{
  api.accessToken.setCustomClaim('https://example.com/client_name', event.client.name);
}}
"#
        ),
    };
    javascript_project(
        name,
        world,
        &format!("{name}.ts"),
        source,
        (
            "tsconfig.json",
            "{\n  \"compilerOptions\": {\n    \"strict\": true,\n    \"noEmit\": true,\n    \
             \"module\": \"es2022\",\n    \"target\": \"es2022\",\n    \
             \"moduleResolution\": \"bundler\",\n    \"lib\": [\"es2022\", \"dom\"]\n  }\n}\n",
        ),
    )
}

/// A JavaScript project's files: the plugin at `main`, its `package.json`,
/// the SDK's types and the editor's config (`jsconfig.json` or
/// `tsconfig.json`, with its text).
fn javascript_project(
    name: &str,
    world: World,
    main: &str,
    source: String,
    (config_file, config): (&str, &str),
) -> Vec<(String, String)> {
    let package_json = format!(
        "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\",\n  \
         \"main\": \"{main}\",\n  \"claimsmith\": {{ \"world\": \"{world}\" }}\n}}\n"
    );
    vec![
        (main.to_owned(), source),
        ("package.json".to_owned(), package_json),
        (
            "claimsmith.d.ts".to_owned(),
            crate::build::JS_TYPES.to_owned(),
        ),
        (config_file.to_owned(), config.to_owned()),
    ]
}

fn python_files(world: World, name: &str, module: &str) -> Vec<(String, String)> {
    let source = match world {
        World::PostLoginAction => format!(
            r#""""{name}: a post-login action. It copies the profile's `department`
into the access token, and denies users whose email is not verified."""

from claimsmith import Event
from claimsmith.action import Api


def on_execute_post_login(event: Event, api: Api) -> None:
    if event.user.profile.get("email_verified") is False:
        api.access.deny("email address not verified")
        return
    if "department" in event.user.profile:
        api.access_token.set_custom_claim("department", event.user.profile["department"])


# An action that sends the user away (`api.redirect.send_user_to`) also
# defines `on_continue_post_login(event, api)`, run when they come back
# (Auth0's `onContinuePostLogin`).
"#
        ),
        World::ProfileFetcher => format!(
            r#""""{name}: a profile fetcher. It GETs the connection's `userinfo_url`
with the upstream access token and returns the answer as the profile."""

from claimsmith import FetchContext, fetch


def fetch_user_profile(access_token: str, ctx: FetchContext) -> dict:
    url = ctx.options.get("userinfo_url")
    if not isinstance(url, str):
        raise ValueError("connection option `userinfo_url` is missing")
    response = fetch(url, headers={{"Authorization": f"Bearer {{access_token}}"}})
    if response.status != 200:
        raise RuntimeError(f"userinfo answered {{response.status}}")
    profile = response.json()
    profile["connection"] = ctx.connection
    return profile
"#
        ),
        World::CredentialsExchange => format!(
            r#""""{name}: a credentials-exchange action. It puts the machine client's
name into the access token it asked for."""

from claimsmith.credentials import Api, Event


def on_execute_credentials_exchange(event: Event, api: Api) -> None:
    api.access_token.set_custom_claim("https://example.com/client_name", event.client.name)
"#
        ),
    };
    let pyproject = format!(
        "[project]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n\
         [tool.claimsmith]\nworld = \"{world}\"\nmodule = \"{module}\"\n"
    );
    vec![
        (format!("{module}.py"), source),
        ("pyproject.toml".to_owned(), pyproject),
    ]
}

fn golden_name(world: World) -> &'static str {
    match world {
        World::PostLoginAction => "department-claim",
        World::ProfileFetcher => "userinfo-profile",
        World::CredentialsExchange => "client-name-claim",
    }
}

fn golden(world: World, language: Language, name: &str) -> String {
    let wasm = format!("../target/plugins/{}/{name}.wasm", language.dir_name());
    match world {
        World::PostLoginAction => format!(
            r#"# A golden case: `claimsmith test goldens` runs it against the build.
name: {name} puts the department into the access token
wasm: {wasm}
world: post-login-action
input:
  connection: upstream
  client_id: my-app
  upstream:
    access_token: at-ada
    id_token_claims: {{ sub: ada }}
  profile: {{ sub: ada, email_verified: true, department: Engines }}
expect:
  claims:
    access_token: {{ department: Engines }}
    id_token: {{}}
"#
        ),
        World::ProfileFetcher => format!(
            r#"# A golden case: `claimsmith test goldens` runs it against the build.
# The userinfo request is answered from `http`, never from the network.
name: {name} returns the userinfo answer as the profile
wasm: {wasm}
world: profile-fetcher
allowed_origins: [https://idp.example.com]
options: {{ userinfo_url: https://idp.example.com/userinfo }}
input:
  connection: upstream
  client_id: my-app
  upstream:
    access_token: at-ada
    id_token_claims: {{ sub: ada }}
  http:
    - request:
        url: https://idp.example.com/userinfo
        headers: {{ authorization: Bearer at-ada }}
      response:
        json: {{ sub: ada, name: Ada Lovelace }}
expect:
  profile: {{ sub: ada, name: Ada Lovelace, connection: upstream }}
"#
        ),
        World::CredentialsExchange => format!(
            r#"# A golden case: `claimsmith test goldens` runs it against the build.
# The input is a machine client's token request (client_credentials).
name: {name} puts the client's name into the access token
wasm: {wasm}
world: credentials-exchange
input:
  client: {{ client_id: m2m-reports, name: Reports, metadata: {{}} }}
  audience: https://api.example.com
  requested_scopes: [read:reports]
  request: {{ ip: 203.0.113.7, user_agent: curl/8 }}
expect:
  claims:
    access_token: {{ "https://example.com/client_name": Reports }}
  scopes: [read:reports]
"#
        ),
    }
}

fn readme(world: World, source: SourceLanguage, name: &str) -> String {
    format!(
        "# {name}\n\nA Claimsmith {world} in {language_name}, made by `claimsmith new`.\n\n\
         ```sh\nclaimsmith build .             # -> target/plugins/{lang}/{name}.wasm\n\
         claimsmith test goldens         # the golden cases in goldens/\n```\n\n\
         To run it, add it to your `claimsmith.toml`:\n\n\
         ```toml\n[plugins.{name}]\npath = \"target/plugins/{lang}/{name}.wasm\"\nworld = \"{world}\"\n{chain}```\n",
        language_name = source.name(),
        lang = source.built_as().dir_name(),
        chain = chain_entry(world, name),
    )
}

/// The config table that runs a plugin of `world`, besides declaring it: a
/// credentials-exchange action runs only from its own chain.
fn chain_entry(world: World, name: &str) -> String {
    match world {
        World::CredentialsExchange => format!("\n[[credentials_exchange]]\nplugin = \"{name}\"\n"),
        World::PostLoginAction | World::ProfileFetcher => String::new(),
    }
}
