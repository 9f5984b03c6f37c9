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

pub mod action {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "post-login-action",
        exports: { default: async },
        with: {
            "claimsmith:plugin/types": super::fetcher::claimsmith::plugin::types,
            "claimsmith:plugin/log": super::fetcher::claimsmith::plugin::log,
            "claimsmith:plugin/secrets": super::fetcher::claimsmith::plugin::secrets,
            "claimsmith:plugin/http": super::fetcher::claimsmith::plugin::http,
        },
    });
}

pub mod exchange {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "credentials-exchange",
        exports: { default: async },
        with: {
            "claimsmith:plugin/types": super::fetcher::claimsmith::plugin::types,
            "claimsmith:plugin/log": super::fetcher::claimsmith::plugin::log,
            "claimsmith:plugin/secrets": super::fetcher::claimsmith::plugin::secrets,
            "claimsmith:plugin/http": super::fetcher::claimsmith::plugin::http,
            "claimsmith:plugin/event-types": super::action::claimsmith::plugin::event_types,
            "claimsmith:plugin/cache": super::action::claimsmith::plugin::cache,
        },
    });
}
