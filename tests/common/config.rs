//! Writing gateway config: the full file around a test's tables
//! ([`render_config`]), atomic replacement for reloads, and the `[[upstream]]` /
//! `[[route]]` snippets most tests are made of.

use super::gateway::COUNTER;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Render a full config: `[server]` (workers = 1, our listen port, extras),
/// `[log]` (access off unless `log_extra` sets it) and the rest verbatim.
pub fn render_config(port: u16, server_extra: &str, log_extra: &str, rest: &str) -> String {
    let mut log = String::new();
    if !log_extra.contains("level") {
        log.push_str("level = \"info\"\n");
    }
    if !log_extra.contains("access") {
        log.push_str("access = \"off\"\n");
    }
    log.push_str(log_extra);
    let mut server = String::new();
    if !server_extra.contains("workers") {
        server.push_str("workers = 1\n");
    }
    server.push_str(&format!("listen = [\"127.0.0.1:{}\"]\n", port));
    server.push_str(server_extra);
    format!("[server]\n{}\n\n[log]\n{}\n\n{}\n", server, log, rest)
}

pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    fs::write(&tmp, text).expect("write config");
    fs::rename(&tmp, path).expect("rename config");
}

// ---------------------------------------------------------------------------
// config snippets
// ---------------------------------------------------------------------------

/// `[[upstream]]` block named `name` with the given target ports and extra lines.
pub fn upstream_block(name: &str, ports: &[u16], extra: &str) -> String {
    let targets: Vec<String> = ports
        .iter()
        .map(|p| format!("\"127.0.0.1:{}\"", p))
        .collect();
    format!(
        "[[upstream]]\nname = \"{}\"\ntargets = [{}]\n{}\n\n",
        name,
        targets.join(", "),
        extra
    )
}

/// `[[route]]` block proxying `path` (prefix) to upstream `upstream`.
pub fn proxy_route(name: &str, path: &str, upstream: &str) -> String {
    format!(
        "[[route]]\nname = \"{}\"\npath = \"{}\"\nupstream = \"{}\"\n\n",
        name, path, upstream
    )
}

/// `[[route]]` block answering `path` (prefix) with a mock text body.
pub fn mock_route(name: &str, path: &str, status: u16, body: &str) -> String {
    format!(
        "[[route]]\nname = \"{}\"\npath = \"{}\"\nmock = {{ status = {}, body = \"{}\", content_type = \"text/plain\" }}\n\n",
        name, path, status, body
    )
}

/// Upstream `u` on the given ports and a catch-all route `/` to it.
pub fn proxy_all(ports: &[u16], upstream_extra: &str) -> String {
    format!(
        "{}{}",
        upstream_block("u", ports, upstream_extra),
        proxy_route("all", "/", "u")
    )
}
