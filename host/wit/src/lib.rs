//! Host bindings generated from `wit/claimsmith.wit`, one module per world.
//!
//! Owns nothing but the generated code: the engine links these bindings and
//! calls the exports, the capabilities implement the imports. The interfaces
//! both worlds import are generated once, in [`fetcher`], and reused by
//! [`action`], so each capability implements its interface once.

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
