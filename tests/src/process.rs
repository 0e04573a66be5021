//! What the harnesses of the servers run as processes of their own ([`garage`](crate::garage),
//! [`moto`](crate::moto)) share: free loopback ports, and the watchdog that stops the server
//! when the test binary is gone.
//!
//! The workspace forbids `unsafe`, so no `atexit` or `prctl(PR_SET_PDEATHSIG)`, and a `static`
//! is never dropped. Instead a small `sh` loop, started beside the server, polls the test
//! process's pid once a second; when it is gone (normal exit, panic, or `SIGKILL`) it stops
//! the server (`TERM`, then `KILL` after two seconds) and removes the server's directory.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `N` distinct free loopback ports (held together while they are picked, so they differ;
/// free when picked: the server binds them a moment later).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Where the watchdog finds the server's pid.
#[derive(Debug, Clone, Copy)]
pub enum ServerPid<'a> {
    /// Known now.
    Known(u32),
    /// In this file when the test binary is gone (a server restarted under a new pid writes
    /// it there).
    File(&'a Path),
}

/// Starts the `sh` loop that stops the server and removes `dir` once this process is gone;
/// `what` names the server in a message if it cannot start.
pub fn start_watchdog(server: ServerPid<'_>, dir: &Path, what: &str) -> Child {
    let me = std::process::id();
    let pid = match server {
        ServerPid::Known(pid) => pid.to_string(),
        ServerPid::File(file) => format!("$(cat '{}')", file.display()),
    };
    let dir = dir.display();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         server={pid}; \
         kill -TERM $server 2>/dev/null; i=0; \
         while kill -0 $server 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; \
         kill -KILL $server 2>/dev/null; rm -rf '{dir}'"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the watchdog that stops {what}: {e}"))
}
