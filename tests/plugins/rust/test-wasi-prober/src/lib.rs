//! Test plugin: a post-login action that tries every door WASI has and
//! reports what each did, in the access token claim `wasi_probe`.
//!
//! Exists to prove that WASI is linked with everything denied: no file
//! (read, write or list), no environment variable, no TCP or UDP socket, no
//! name lookup. Each attempt must end in an error the plugin sees and can
//! handle, and the login goes on as the plugin decides (here: it succeeds).

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};
use serde_json::{Value, json};

struct Prober;

/// "denied: <why>" for an error, "OPEN" when the door opened.
fn outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> Value {
    match result {
        Ok(_) => json!("OPEN"),
        Err(error) => json!(format!("denied: {error}")),
    }
}

impl Guest for Prober {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let env_vars: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
        let probe = json!({
            "read_file": outcome(std::fs::read("/etc/passwd")),
            "write_file": outcome(std::fs::write("probe.txt", b"x")),
            "list_dir": outcome(std::fs::read_dir(".")),
            "env_var": outcome(std::env::var("HOME")),
            "env_vars": env_vars,
            "args": std::env::args().collect::<Vec<_>>(),
            "tcp_connect": outcome(std::net::TcpStream::connect("127.0.0.1:5432")),
            "tcp_listen": outcome(std::net::TcpListener::bind("127.0.0.1:0")),
            "udp_bind": outcome(std::net::UdpSocket::bind("127.0.0.1:0")),
            "dns": outcome(std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80))),
        });
        api::set_custom_claim(Token::AccessToken, "wasi_probe", &probe.to_string())
            .map_err(|e| format!("cannot set wasi_probe: {e:?}"))
    }
}

export!(Prober);
