//! `claimsmith plugins`: pushes, lists, pulls, deploys and rolls back the versions
//! of `source = "store"` plugins through a running deployment's Management
//! API, as a machine client (`create:plugins`, `read:plugins`,
//! `update:plugins`).
//!
//! A thin client of `/api/v2/plugins/{name}/...`: every check is the
//! service's, and this prints what it answers.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use sha2::Digest;

/// Where the deployment is and who calls it.
#[derive(Args)]
pub struct ApiCaller {
    /// The deployment's issuer (`issuer` in its config).
    #[arg(long, env = "CLAIMSMITH_ISSUER")]
    issuer: String,
    /// A machine client of the deployment (`grant_types =
    /// ["client_credentials"]`).
    #[arg(long, env = "CLAIMSMITH_CLIENT_ID")]
    client_id: String,
    /// Its secret; from the environment rather than the command line, where
    /// other users of the machine can read it.
    #[arg(long, env = "CLAIMSMITH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
}

#[derive(Subcommand)]
pub enum PluginsAction {
    /// Pushes a component as the plugin's next version (the same bytes
    /// answer the version that holds them).
    Push {
        wasm: PathBuf,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        caller: ApiCaller,
    },
    /// Lists the plugin's versions and its deploys, newest first.
    List {
        name: String,
        #[command(flatten)]
        caller: ApiCaller,
    },
    /// Deploys a version: every host serves it within `[server]
    /// plugin_poll_secs`.
    Deploy {
        name: String,
        version: u64,
        #[command(flatten)]
        caller: ApiCaller,
    },
    /// Writes a stored version's component to a file: to run a captured
    /// login's case against the build that served it, say.
    Pull {
        name: String,
        version: u64,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        caller: ApiCaller,
    },
    /// Deploys again the version that served before the live one.
    Rollback {
        name: String,
        #[command(flatten)]
        caller: ApiCaller,
    },
}

pub async fn execute(action: PluginsAction) -> anyhow::Result<()> {
    match action {
        PluginsAction::Push { wasm, name, caller } => {
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
            let api = Api::sign_in(&caller).await?;
            let request = api
                .request(reqwest::Method::POST, &format!("plugins/{name}/versions"))
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes);
            print_json(&api.send(request).await?);
        }
        PluginsAction::List { name, caller } => {
            let api = Api::sign_in(&caller).await?;
            let versions = api.get(&format!("plugins/{name}/versions")).await?;
            let deployments = api.get(&format!("plugins/{name}/deployments")).await?;
            print_json(&serde_json::json!({"versions": versions, "deployments": deployments}));
        }
        PluginsAction::Deploy {
            name,
            version,
            caller,
        } => {
            let api = Api::sign_in(&caller).await?;
            print_json(&api.deploy(&name, version).await?);
        }
        PluginsAction::Pull {
            name,
            version,
            out,
            caller,
        } => {
            let api = Api::sign_in(&caller).await?;
            let path = format!("plugins/{name}/versions/{version}");
            let bytes = api.answer(api.request(reqwest::Method::GET, &path)).await?;
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print_json(&serde_json::json!({
                "version": version,
                "sha256": format!("{:x}", sha2::Sha256::digest(&bytes)),
                "size": bytes.len(),
                "out": out,
            }));
        }
        PluginsAction::Rollback { name, caller } => {
            let api = Api::sign_in(&caller).await?;
            let deployments = api.get(&format!("plugins/{name}/deployments")).await?;
            let before = previous_version(&deployments)
                .with_context(|| format!("plugin `{name}` has no deploy before the live one"))?;
            print_json(&api.deploy(&name, before).await?);
        }
    }
    Ok(())
}

/// The version that served before the live one, in a deploy history (newest
/// first): the newest deploy of another version, so that a redeploy of the
/// live version is skipped and a second rollback undoes the first.
fn previous_version(deployments: &Value) -> Option<u64> {
    let mut versions = deployments
        .as_array()?
        .iter()
        .map(|deploy| deploy.get("version").and_then(Value::as_u64));
    let live = versions.next()??;
    versions.flatten().find(|version| *version != live)
}

fn print_json(value: &Value) {
    println!("{value:#}");
}

/// The Management API of one deployment, with a token for it.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Gets a client-credentials token at the issuer's token endpoint (from
    /// its discovery document).
    async fn sign_in(caller: &ApiCaller) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let issuer = caller.issuer.trim_end_matches('/');
        let discovery: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("cannot read {issuer}'s discovery document"))?
            .json()
            .await?;
        let token_endpoint = discovery["token_endpoint"]
            .as_str()
            .context("the discovery document names no token_endpoint")?;
        let audience = claimsmith_core::management_audience(issuer);
        let answer: Value = http
            .post(token_endpoint)
            .basic_auth(&caller.client_id, Some(&caller.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("audience", audience.as_str()),
            ])
            .send()
            .await
            .context("cannot reach the token endpoint")?
            .json()
            .await?;
        let token = answer["access_token"].as_str().with_context(|| {
            format!(
                "the token endpoint refused client `{}`: {answer}",
                caller.client_id
            )
        })?;
        Ok(Api {
            http,
            base: audience,
            token: token.to_owned(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    async fn deploy(&self, name: &str, version: u64) -> anyhow::Result<Value> {
        let request = self
            .request(reqwest::Method::POST, &format!("plugins/{name}/deploy"))
            .json(&serde_json::json!({"version": version}));
        self.send(request).await
    }

    /// The answer's JSON, or its `message` as the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let body = self.answer(request).await?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The answer's bytes, or its JSON `message` as the error.
    async fn answer(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let response = request
            .send()
            .await
            .context("cannot reach the Management API")?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .context("the Management API's answer broke off")?;
        if !status.is_success() {
            let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message = error["message"].as_str().unwrap_or("no message");
            anyhow::bail!("the Management API answered {status}: {message}");
        }
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_takes_the_version_that_served_before_the_live_one() {
        let history = |versions: &[u64]| {
            Value::Array(
                versions
                    .iter()
                    .map(|v| serde_json::json!({"version": v}))
                    .collect(),
            )
        };
        assert_eq!(previous_version(&history(&[3, 1, 2])), Some(1));
        // The live version deployed twice: the one before both.
        assert_eq!(previous_version(&history(&[2, 2, 1])), Some(1));
        // A rollback's own deploy: a second rollback undoes it.
        assert_eq!(previous_version(&history(&[1, 2, 1])), Some(2));
        assert_eq!(previous_version(&history(&[3, 3])), None);
        assert_eq!(previous_version(&history(&[3])), None);
    }
}
