//! Host bindings generated from `wit/claimsmith.wit`, one module per world.
//!
//! Owns nothing but the generated code: the engine links these bindings and
//! calls the exports, the capabilities implement the imports. An interface
//! several worlds import is generated once, in the first module that has it
//! ([`fetcher`], then [`action`]), and reused by the later ones, so each
//! capability implements its interface once.

pub mod fetcher {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "profile-fetcher",
        imports: { "claimsmith:plugin/http.fetch": async },
        exports: { default: async },
    });
}

/// The bindings of an action world, reusing the interfaces [`fetcher`]
/// generated (and any `$reused` more), with every export async.
macro_rules! action_world {
    ($world:literal $(, $reused:literal => $module:path)*) => {
        wasmtime::component::bindgen!({
            path: "../../wit",
            world: $world,
            exports: { default: async },
            with: {
                "claimsmith:plugin/types": super::fetcher::claimsmith::plugin::types,
                "claimsmith:plugin/log": super::fetcher::claimsmith::plugin::log,
                "claimsmith:plugin/secrets": super::fetcher::claimsmith::plugin::secrets,
                "claimsmith:plugin/http": super::fetcher::claimsmith::plugin::http,
                $($reused: $module,)*
            },
        });
    };
}

pub mod action {
    action_world!("post-login-action");
}

pub mod exchange {
    action_world!(
        "credentials-exchange",
        "claimsmith:plugin/event-types" => super::action::claimsmith::plugin::event_types,
        "claimsmith:plugin/cache" => super::action::claimsmith::plugin::cache
    );
}
