//! Test plugin: a post-login action that spins forever and never returns.
//!
//! Exists to prove the host bounds a plugin's CPU time (fuel or epoch
//! interruption) and fails that plugin's step instead of hanging the login.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

struct Looper;

impl Guest for Looper {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let mut counter: u64 = 0;
        loop {
            // `black_box` keeps the optimizer from proving the loop does nothing.
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

export!(Looper);
