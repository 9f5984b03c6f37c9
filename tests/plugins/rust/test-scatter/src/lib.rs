//! Test plugin: a post-login action that dirties every other 4 KiB page of a
//! 4 MiB static buffer, after checking that each of those pages reads zero.
//!
//! Exists to prove how the host resets a freed instance: the pages one login
//! wrote read zero again in the next (`stale_pages`, set as an access token
//! claim, must be 0), and a heap dirtied in more disjoint regions than one
//! `PAGEMAP_SCAN` returns is still reset in place rather than page-faulted
//! back in by the next instance.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};
use std::sync::atomic::{AtomicU8, Ordering};

const PAGE: usize = 4096;
/// 512 pages written, each its own region: far more than the 32 regions a
/// scan returns.
const PAGES: usize = 1024;

/// Zero-initialised, so it lies outside the component's data image: its
/// pages are the kernel's zero page until written.
static BUFFER: [AtomicU8; PAGES * PAGE] = [const { AtomicU8::new(0) }; PAGES * PAGE];

struct Scatter;

impl Guest for Scatter {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let mut stale_pages = 0u32;
        for page in (0..PAGES).step_by(2) {
            let byte = &BUFFER[page * PAGE];
            if byte.load(Ordering::Relaxed) != 0 {
                stale_pages += 1;
            }
            byte.store(0xA5, Ordering::Relaxed);
        }
        api::set_custom_claim(Token::AccessToken, "stale_pages", &stale_pages.to_string())
            .map_err(|e| format!("cannot set the claim `stale_pages`: {e:?}"))
    }
}

export!(Scatter);
