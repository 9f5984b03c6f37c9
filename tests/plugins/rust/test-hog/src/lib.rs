//! Test plugin: a post-login action that allocates memory until it cannot.
//!
//! Exists to prove the host caps a plugin's linear memory and fails that
//! plugin's step (instead of the host running out of memory). It allocates
//! 1 MiB buffers, writes to every page of each so the memory is really
//! used, and keeps them all.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use std::hint::black_box;

const MIB: usize = 1 << 20;
/// Smaller than a 64 KiB wasm page, so every wasm page (and every 4 KiB OS page) is touched.
const PAGE: usize = 4096;

struct Hog;

impl Guest for Hog {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut buffer = vec![0u8; MIB];
            for page in buffer.chunks_mut(PAGE) {
                page[0] = 0xA5;
            }
            kept.push(black_box(buffer));
            black_box(&kept);
        }
    }
}

export!(Hog);
