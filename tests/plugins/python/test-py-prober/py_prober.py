"""Test plugin: test-wasi-prober in Python. Tries every door Python's
standard library opens onto WASI (files, environment, TCP, UDP, name lookup)
and reports what each did in the access token claim `wasi_probe`.

Exists to prove that componentize-py's imports of wasi:filesystem, wasi:cli
and all of wasi:sockets grant nothing: each attempt raises an error the
plugin catches, and the login goes on."""

import os
import socket

from claimsmith import Event
from claimsmith.action import Api


def attempt(door) -> str:
    """"denied: <why>" when the door stayed shut, "OPEN" when it opened."""
    try:
        door()
    except Exception as error:  # every refusal is reported, whatever its type
        return f"denied: {type(error).__name__}: {error}"
    return "OPEN"


def bind(kind: int) -> None:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))


def on_execute_post_login(event: Event, api: Api) -> None:
    probe = {
        "read_file": attempt(lambda: open("/etc/passwd", encoding="utf-8").read()),
        "write_file": attempt(lambda: open("probe.txt", "w", encoding="utf-8").write("x")),
        "list_dir": attempt(lambda: os.listdir("/")),
        "env_var": attempt(lambda: os.environ["HOME"]),
        "env_vars": sorted(os.environ.keys()),
        "tcp_connect": attempt(
            lambda: socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        ),
        "tcp_listen": attempt(lambda: bind(socket.SOCK_STREAM)),
        "udp_bind": attempt(lambda: bind(socket.SOCK_DGRAM)),
        "dns": attempt(lambda: socket.getaddrinfo("localhost", 80)),
    }
    api.access_token.set_custom_claim("wasi_probe", probe)
