//! portcullis: a self-hosted edge API gateway — a thread-per-core HTTP/1.1 reverse
//! proxy on io_uring with the security layer of AWS API Gateway in front of it.
//!
//! Dependencies point one way, each layer naming only those before it
//! (`python3 scripts/module-graph.py` prints the graph and fails on a cycle):
//!
//! 1. leaves: [`hex`], [`sock`], [`time`], [`panic`], [`random`], [`log`], [`metrics`], [`http`], [`store`];
//! 2. [`limit`] (on `store`), [`config`] (on `limit`'s periods), [`tls`];
//! 3. [`upstream`]: upstream connections and pools, which the proxy and the
//!    external authorizer share;
//! 4. [`guard`] (the stages, pure policy), [`route`];
//! 5. [`gateway`]: `Config` → the compiled snapshot a reload swaps;
//! 6. [`session`]: the per-core state, the client connection and one request's
//!    state, which the proxy and the server both sit on;
//! 7. [`proxy`] → [`server`] → [`admin`] → [`runtime`]; beside them, the [`keys`]
//!    and [`audit`] commands.
//!
//! The map:
//! - [`config`]: the TOML file → typed `Config`, errors with file, line and field.
//! - [`gateway`]: `Config` → the immutable compiled `Gateway` snapshot a reload swaps.
//! - [`route`]: the route table (host, path, method → route).
//! - [`guard`]: the per-route guard pipeline run before a request is forwarded.
//! - [`http`]: the HTTP/1.1 codec — strict request heads, chunked framing, replies.
//! - [`upstream`]: upstream connections (TCP or TLS) and per-core pools with balancing.
//! - [`session`]: a core's state (`Core`), what the cores share, the client connection.
//! - [`proxy`]: header rewriting and forwarding one exchange.
//! - [`server`]: listeners and the client connection loop.
//! - [`admin`]: the operator's API (health, readiness, metrics, reload), off the cores.
//! - [`runtime`]: worker threads per core, io driver choice, signals, reload, drain.
//! - [`limit`]: throttling and quotas — token buckets spent per core, reconciled globally.
//! - [`store`]: the embedded store of API keys (hashed) and quota counters.
//! - [`keys`]: the `portcullis keys` commands.
//! - [`audit`]: `portcullis audit`, a config against the controls gateways are audited on.
//! - [`log`]: the access log, written off the request path.
//! - [`metrics`]: per-core request counters, summed when `/metrics` is scraped.
//! - [`hex`]: hex digits and encoding, shared by every module that needs them.
//! - [`sock`]: socket options and probes monoio does not wrap.
//! - [`time`]: core-local deadlines: a coarse clock and a sweeper instead of a timer per wait.
//! - [`panic`]: panic containment, so one connection's bug stays its own.
//! - [`random`]: bytes from the kernel's CSPRNG.
//! - [`tls`]: rustls configs for HTTPS listeners, mTLS and upstream TLS, and the TLS stream.

pub mod admin;
pub mod audit;
pub mod config;
pub mod gateway;
pub mod guard;
pub mod hex;
pub mod http;
pub mod keys;
pub mod limit;
pub mod log;
pub mod metrics;
pub mod panic;
pub mod proxy;
pub mod random;
pub mod route;
pub mod runtime;
pub mod server;
pub mod session;
pub mod sock;
pub mod store;
pub mod time;
pub mod tls;
pub mod upstream;
