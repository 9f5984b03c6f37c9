//! The profile-fetcher world: `fetch_user_profile(access_token, ctx)`, as
//! Auth0's Fetch User Profile script, returning the profile.

use serde_json::{Map, Value};

/// The generated bindings of the `profile-fetcher` world. The interfaces both
/// worlds import (log, secrets, http) are generated here once.
// wit-bindgen emits the world's export shim without a clippy allow, and
// `fetch-context` (five strings) flattens to ten ABI parameters.
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "profile-fetcher",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "claimsmith_sdk::fetcher::bindings",
    });
}

/// A profile: a JSON object.
pub type Profile = Map<String, Value>;

/// What a profile fetcher receives besides the upstream access token.
#[derive(Debug, Clone)]
pub struct FetchContext {
    /// The connection's name in config.
    pub connection: String,
    /// The upstream id token, as received (a compact JWT).
    pub id_token: String,
    /// The id token's claims, already verified by the host.
    pub id_token_claims: Map<String, Value>,
    /// The connection's `options` table from config.
    pub options: Map<String, Value>,
}

/// Runs the plugin's function on the host's call; used by
/// [`profile_fetcher!`](crate::profile_fetcher).
#[doc(hidden)]
pub fn run(
    context: bindings::FetchContext,
    handler: fn(&str, &FetchContext) -> Result<Profile, crate::Error>,
) -> Result<String, String> {
    let ctx = FetchContext {
        connection: context.connection,
        id_token: context.id_token,
        id_token_claims: crate::parse_object(&context.id_token_claims),
        options: crate::parse_object(&context.options),
    };
    let profile = handler(&context.access_token, &ctx).map_err(|e| e.to_string())?;
    serde_json::to_string(&profile).map_err(|e| format!("cannot serialize the profile: {e}"))
}

/// Makes this crate a profile fetcher whose profile comes from `handler`,
/// a `fn(&str, &FetchContext) -> Result<Profile, Error>`.
#[macro_export]
macro_rules! profile_fetcher {
    ($handler:path) => {
        struct ClaimsmithProfileFetcher;
        impl $crate::fetcher::bindings::Guest for ClaimsmithProfileFetcher {
            fn fetch_profile(
                ctx: $crate::fetcher::bindings::FetchContext,
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $crate::fetcher::run(ctx, $handler)
            }
        }
        $crate::fetcher::bindings::export!(ClaimsmithProfileFetcher);
    };
}
