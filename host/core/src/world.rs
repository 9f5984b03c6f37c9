//! The worlds of the contract (`wit/claimsmith.wit`) a plugin can implement,
//! as config names them. The generated bindings for each live in
//! `claimsmith-wit`; this is only the name, so that config can check a plugin
//! entry without linking wasmtime.

/// The world a plugin implements, as named in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    ProfileFetcher,
    PostLoginAction,
    CredentialsExchange,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::ProfileFetcher => "profile-fetcher",
            World::PostLoginAction => "post-login-action",
            World::CredentialsExchange => "credentials-exchange",
        })
    }
}
