//! `claimsmith demo`: the whole product on one machine. Starts the
//! development upstream provider, starts the service on the embedded
//! defaults (SQLite in the data directory), signs in once exactly as an app
//! would over HTTP (authorize → upstream → callback → code → token), prints
//! the decoded tokens, then keeps serving so a browser can sign in again.
//!
//! Owns nothing the service uses: it drives the service from outside, over
//! loopback HTTP, like any app. The development provider is never started
//! by `serve`.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::Url;
use serde_json::{Map, Value, json};

use claimsmith_config::{ClientConfig, Config};
use claimsmith_devprovider::{DevProvider, DevProviderConfig, DevUser, Protocol};
use claimsmith_oauth::{pkce_challenge, random_token};
use claimsmith_server::Service;

/// The path of the demo app's page, served beside the service.
pub const DEMO_APP_PATH: &str = "/demo/app";

pub async fn run(config: Config) -> anyhow::Result<()> {
    let provider = start_upstream(&config).await?;
    let client = config
        .clients
        .first()
        .cloned()
        .context("the demo config needs a client")?;
    let settings = config.server.clone();
    let listen = settings.listen;
    let issuer = config.issuer.clone();
    let service = Service::start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let app_client = client.clone();
    let app_issuer = issuer.clone();
    let router = claimsmith_server::router(service).route(
        DEMO_APP_PATH,
        axum::routing::get(move |query| {
            demo_app_page(app_issuer.clone(), app_client.clone(), query)
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = claimsmith_server::serve_router(router, settings, listener).await {
            tracing::error!(%error, "the service stopped");
        }
    });

    let tokens = sign_in(&issuer, &client).await?;
    let jwks: JwkSet = reqwest::get(format!("{issuer}/.well-known/jwks.json"))
        .await?
        .json()
        .await?;
    let id_claims = verify(&tokens["id_token"], &jwks, &client.client_id)?;
    println!(
        "signed in as an app would; the id token verifies against {issuer}/.well-known/jwks.json\n"
    );
    println!("id token:\n{:#}\n", Value::Object(id_claims));
    println!(
        "access token:\n{:#}\n",
        decode_claims(&tokens["access_token"])
    );
    let browser_url = authorize_url(&issuer, &client, &random_token(), None)?;
    println!(
        "Still serving on {issuer}. Sign in again from a browser:\n  {browser_url}\n(Ctrl-C to stop.)"
    );
    tokio::signal::ctrl_c().await?;
    drop(provider);
    Ok(())
}

/// `claimsmith dev-upstream`: only the development provider of `config`'s
/// first connection, until Ctrl-C, for a `claimsmith serve` of the same
/// config to sign in at (`cargo xtask bench` measures the service's own
/// process that way, without the upstream's work in it).
pub async fn run_upstream(config: Config) -> anyhow::Result<()> {
    let provider = start_upstream(&config).await?;
    println!("development upstream ready at {}", provider.issuer());
    tokio::signal::ctrl_c().await?;
    drop(provider);
    Ok(())
}

/// Starts the development provider at the issuer of `config`'s first
/// connection, registered with that connection's client id and secret.
async fn start_upstream(config: &Config) -> anyhow::Result<DevProvider> {
    let connection = config
        .connections
        .first()
        .context("the demo config needs a connection")?;
    let registration = connection
        .upstream
        .clone()
        .context("the demo connection needs issuer, client_id and client_secret")?;
    let claimsmith_config::UpstreamProtocol::OpenIdConnect { issuer } = &registration.protocol
    else {
        anyhow::bail!("the demo connection's upstream must be an OpenID Connect issuer");
    };
    let upstream_addr = Url::parse(issuer)?
        .socket_addrs(|| None)?
        .into_iter()
        .next()
        .context("the demo upstream issuer has no address")?;
    let provider = DevProvider::start(
        upstream_addr,
        DevProviderConfig {
            client_id: registration.client_id.clone(),
            client_secret: registration.client_secret.expose().to_owned(),
            user: DevUser::default(),
            protocol: Protocol::OpenIdConnect,
        },
    )
    .await
    .with_context(|| format!("cannot start the development provider on {upstream_addr}"))?;
    tracing::warn!(
        issuer = provider.issuer(),
        "DEVELOPMENT upstream provider running: never use it in production"
    );
    Ok(provider)
}

fn authorize_url(
    issuer: &str,
    client: &ClientConfig,
    state: &str,
    pkce: Option<(&str, &str)>,
) -> anyhow::Result<Url> {
    let redirect_uri = client
        .redirect_uris
        .first()
        .context("the demo client needs a redirect URI")?;
    let mut url = Url::parse(&format!("{issuer}/authorize"))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", state);
    if let Some((nonce, challenge)) = pkce {
        url.query_pairs_mut()
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
    }
    Ok(url)
}

/// One authorization-code login with PKCE, following each redirect by hand
/// as a browser would, then the code exchange as the app's backend would.
async fn sign_in(issuer: &str, client: &ClientConfig) -> anyhow::Result<Map<String, Value>> {
    // A browser: keeps cookies, follows redirects one by one.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()?;
    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let mut location = authorize_url(
        issuer,
        client,
        &state,
        Some((&nonce, &pkce_challenge(&verifier))),
    )?;
    let redirect_uri = client.redirect_uris.first().cloned().unwrap_or_default();
    for _hop in 0..5 {
        if location.as_str().starts_with(&redirect_uri) {
            break;
        }
        let response = http.get(location.clone()).send().await?;
        let next = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .with_context(|| {
                format!(
                    "{location} answered {} without a redirect",
                    response.status()
                )
            })?;
        location = location.join(next)?;
    }
    let params: Map<String, Value> = location
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    if params.get("state").and_then(Value::as_str) != Some(state.as_str()) {
        bail!("the state came back wrong: {location}");
    }
    let Some(code) = params.get("code").and_then(Value::as_str) else {
        bail!("no code: {location}");
    };
    let mut request = http.post(format!("{issuer}/oauth/token"));
    if let Some(secret) = &client.client_secret {
        request = request.basic_auth(&client.client_id, Some(secret.expose()));
    }
    let response = request
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
            ("client_id", client.client_id.as_str()),
        ])
        .send()
        .await?;
    let status = response.status();
    let body: Map<String, Value> = response.json().await?;
    if !status.is_success() {
        bail!(
            "the token endpoint answered {status}: {}",
            Value::Object(body)
        );
    }
    if let Some(id_token) = body.get("id_token")
        && decode_claims(id_token)["nonce"] != json!(nonce)
    {
        bail!("the id token carries another nonce");
    }
    Ok(body)
}

fn verify(token: &Value, jwks: &JwkSet, audience: &str) -> anyhow::Result<Map<String, Value>> {
    let token = token.as_str().context("no token")?;
    let header = jsonwebtoken::decode_header(token)?;
    let jwk = jwks
        .find(header.kid.as_deref().unwrap_or_default())
        .context("the token's key is not in the JWKS")?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    Ok(jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_jwk(jwk)?,
        &validation,
    )?
    .claims)
}

fn decode_claims(token: &Value) -> Value {
    token
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// The demo app's redirect target: exchanges the code with the app's secret,
/// as the app's backend would, and shows the tokens' claims.
async fn demo_app_page(
    issuer: String,
    client: ClientConfig,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Html<String> {
    let page = |body: String| {
        axum::response::Html(format!(
            "<!doctype html><title>Claimsmith demo app</title><h1>Claimsmith demo app</h1>{body}"
        ))
    };
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    if let Some(error) = params.get("error") {
        let description = params.get("error_description").map_or("", String::as_str);
        return page(format!(
            "<p>Sign-in failed: <b>{}</b> {}</p>",
            escape(error),
            escape(description)
        ));
    }
    let Some(code) = params.get("code") else {
        return page("<p>No code in the redirect.</p>".to_owned());
    };
    let redirect_uri = client.redirect_uris.first().cloned().unwrap_or_default();
    let mut request = reqwest::Client::new().post(format!("{issuer}/oauth/token"));
    if let Some(secret) = &client.client_secret {
        request = request.basic_auth(&client.client_id, Some(secret.expose()));
    }
    let answer = request
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
        ])
        .send()
        .await;
    let body: Value = match answer {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(error) => {
            return page(format!(
                "<p>Token request failed: {}</p>",
                escape(&error.to_string())
            ));
        }
    };
    page(format!(
        "<h2>id token</h2><pre>{}</pre><h2>access token</h2><pre>{}</pre>",
        escape(&format!("{:#}", decode_claims(&body["id_token"]))),
        escape(&format!("{:#}", decode_claims(&body["access_token"]))),
    ))
}
