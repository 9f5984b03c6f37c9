//! Test plugin: a profile fetcher that also imports the post-login `api`,
//! which the host grants only to post-login actions.
//!
//! Exists to prove that a plugin importing something its world is not granted
//! fails the host's start with a message naming the plugin and the import.

#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package test:greedy;

            world greedy-fetcher {
                include claimsmith:plugin/profile-fetcher@0.1.0;
                import claimsmith:plugin/api@0.1.0;
            }
        "#,
        path: "../../../../wit",
        world: "test:greedy/greedy-fetcher",
        generate_all,
    });
}

use bindings::claimsmith::plugin::api;
use bindings::{FetchContext, Guest, Json};

struct Greedy;

impl Guest for Greedy {
    fn fetch_profile(_ctx: FetchContext) -> Result<Json, String> {
        // Using the import keeps it in the component's imports.
        api::deny("a profile fetcher cannot deny");
        Ok("{}".to_owned())
    }
}

bindings::export!(Greedy with_types_in bindings);
