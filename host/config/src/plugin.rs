//! What config says of one plugin, as plain data: where its component is, the
//! bounds of a call ([`Limits`]), the origins it may reach ([`HttpPolicy`]),
//! its secrets; and the engine's own settings ([`EngineSettings`]).
//!
//! Owns the shapes and their defaults, nothing more. The engine and each
//! capability read them (the `http` capability turns [`HttpPolicy`] into its
//! checks, the `secrets` capability hands out the values); nothing here
//! links wasmtime or sends a request.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

use claimsmith_core::{SecretValue, World};

/// How long a plugin's request may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How large a response body a plugin may receive, by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Everything needed to load one plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    /// The component's file. For a store plugin: the seed in config until
    /// the host points it at the deployed version's copy.
    pub path: PathBuf,
    /// The SHA-256 (lowercase hex) the file must have, when the config pins
    /// one (or the store does, for a store plugin's version): any other
    /// build is refused at load.
    pub sha256: Option<String>,
    pub source: PluginSource,
    /// The store's version number, once a store plugin is pointed at it.
    pub version: Option<u64>,
    pub world: World,
    /// Whether the logins this plugin runs in are kept, tokens and secrets
    /// replaced, for `claimsmith capture` to write as golden cases.
    pub capture: bool,
    pub limits: Limits,
    /// The plugin's own secrets, by name.
    pub secrets: BTreeMap<String, SecretValue>,
    pub http: HttpPolicy,
    /// Where a post-login action may send the user (`api.redirect`).
    pub redirect_origins: Vec<Origin>,
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginSource {
    /// The file at `path`, swapped by replacing the file.
    #[default]
    File,
    /// The version deployed in the store (`/api/v2/plugins/{name}/deploy`);
    /// `path` is the seed pushed as its first version.
    Store,
}

/// The bounds of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (about one per wasm instruction).
    pub fuel: u64,
    /// The most linear memory the instance may grow to, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time for the whole invocation, from the wait for an
    /// instance slot to the result, `fetch` calls included.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 1_000_000_000,
            memory_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Settings of the engine as a whole, shared by every plugin.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How many plugin instances may be alive at once (the pool's size).
    pub max_concurrent_instances: u32,
    /// The largest memory cap of any plugin; the pool reserves slots this big.
    pub max_memory_bytes: u64,
    /// Where compiled plugins are cached; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_concurrent_instances: 128,
            max_memory_bytes: Limits::default().memory_bytes,
            cache_dir: None,
        }
    }
}

/// What one plugin may reach, and within which bounds.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub allowed_origins: Vec<Origin>,
    pub timeout: Duration,
    pub max_response_bytes: u64,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            allowed_origins: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// `scheme://host:port`, the unit a plugin is granted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin a URL is on; `None` for a URL without a host or a port
    /// its scheme knows.
    pub fn of_url(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// Whether the host is a link-local IP literal (169.254.0.0/16, fe80::/10),
    /// where cloud metadata services answer, or AWS's IPv6 metadata address.
    /// IP literals skip the address guard by design (an operator grants one
    /// to reach an internal service), so these are refused at load instead.
    pub fn is_metadata_literal(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => v4.is_link_local(),
            Ok(std::net::IpAddr::V6(v6)) => {
                (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                    || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
            }
            Err(_) => false,
        }
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}` is not an http or https origin"));
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(format!(
                "`{text}` is not an origin: give only scheme, host and port (no path, query or user)"
            ));
        }
        Origin::of_url(&url).ok_or_else(|| format!("`{text}` has no host"))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise_default_ports_and_case() {
        let origin: Origin = "HTTPS://Example.Okta.com".parse().unwrap();
        assert_eq!(origin.to_string(), "https://example.okta.com:443");
        let url = Url::parse("https://example.okta.com/oauth2/v1/userinfo?x=1").unwrap();
        assert_eq!(Origin::of_url(&url), Some(origin));
    }

    #[test]
    fn metadata_literals_are_recognised() {
        for origin in [
            "http://169.254.169.254",
            "http://169.254.0.1:8080",
            "http://[fe80::1]",
            "http://[fd00:ec2::254]",
            "http://[::ffff:169.254.169.254]",
        ] {
            assert!(
                origin.parse::<Origin>().unwrap().is_metadata_literal(),
                "{origin}"
            );
        }
        for origin in [
            "http://10.0.0.5:8080",
            "https://api.example.com",
            "http://[::1]",
        ] {
            assert!(
                !origin.parse::<Origin>().unwrap().is_metadata_literal(),
                "{origin}"
            );
        }
    }

    #[test]
    fn origins_with_paths_or_other_schemes_are_refused() {
        assert!("https://example.com/userinfo".parse::<Origin>().is_err());
        assert!("ftp://example.com".parse::<Origin>().is_err());
        assert!("not a url".parse::<Origin>().is_err());
    }
}
