//! Test plugin: a post-login action that always panics, so it traps.
//!
//! Exists to prove the host turns a plugin trap into a failed step that names
//! the plugin, and keeps serving other logins afterwards.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

struct Trapper;

impl Guest for Trapper {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        panic!("boom: the trapper always traps")
    }
}

export!(Trapper);
