//! Test plugin: a profile fetcher that returns text that is not JSON.
//!
//! Exists to prove the host checks every JSON text a plugin hands back and
//! fails the step with an error naming the plugin when it is not valid JSON.

/// The bindings for the `profile-fetcher` world.
// wit-bindgen 0.61.1 emits the world-level export shim without a clippy allow,
// and `fetch-context` (five strings) flattens to ten ABI parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "profile-fetcher",
        path: "../../../../wit",
    });
}

use bindings::{FetchContext, Guest, Json};

struct BadJson;

impl Guest for BadJson {
    fn fetch_profile(_ctx: FetchContext) -> Result<Json, String> {
        Ok("{not json".to_owned())
    }
}

bindings::export!(BadJson with_types_in bindings);
