//! Test plugin: a post-login action that also imports an interface that is
//! neither WASI nor the Claimsmith contract (`test:foreign/oracle`).
//!
//! Exists to prove the host refuses such a plugin at load, naming the plugin
//! and the import, before anything could call it.

wit_bindgen::generate!({
    inline: "
        package test:foreign;

        interface oracle {
            ask: func() -> string;
        }

        world foreign-import {
            include claimsmith:plugin/post-login-action@0.1.0;
            import oracle;
        }
    ",
    path: "../../../../wit",
    world: "test:foreign/foreign-import",
    generate_all,
});

use claimsmith::plugin::log::{self, Level};
use test::foreign::oracle;

struct ForeignImport;

impl Guest for ForeignImport {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        // Called, so the import stays in the component.
        log::log(Level::Info, &oracle::ask());
        Ok(())
    }
}

export!(ForeignImport);
