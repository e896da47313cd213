//! The guard pipeline: the checks a route runs before its action, in the fixed
//! order of DESIGN.md (resource policy, WAF, CORS, authentication, authorization,
//! throttling, quota, validation).
//!
//! A route carries its compiled [`Guard`] list; the connection loop calls [`run`]
//! after routing and before proxying. Each stage answers [`Verdict::Continue`] or a
//! ready response, and reads the request through [`RequestCtx`] without copying it.
//! Stages added by later work are new variants of [`Guard`].

pub mod ip;

use std::net::IpAddr;

use crate::http::reply::Reply;

/// What a guard sees of a request: borrowed views, nothing copied.
pub struct RequestCtx<'a> {
    /// The client address the gateway believes (peer, or from trusted X-Forwarded-For).
    pub client_ip: IpAddr,
    pub method: &'a [u8],
    /// The path as routed: percent-escapes of unreserved characters decoded and
    /// slashes merged when the request had any (see `http::request::normalize_path`).
    pub path: &'a [u8],
}

/// A guard's answer.
pub enum Verdict {
    Continue,
    Respond(Reply),
}

/// One compiled stage of a route's pipeline.
#[derive(Debug)]
pub enum Guard {
    /// Resource policy: client IP allow / deny lists.
    IpPolicy(ip::IpPolicy),
}

impl Guard {
    fn check(&self, ctx: &RequestCtx<'_>) -> Verdict {
        match self {
            Guard::IpPolicy(p) => p.check(ctx),
        }
    }
}

/// Runs a route's guards in order; the first that answers decides.
pub fn run(guards: &[Guard], ctx: &RequestCtx<'_>) -> Verdict {
    for g in guards {
        if let Verdict::Respond(r) = g.check(ctx) {
            return Verdict::Respond(r);
        }
    }
    Verdict::Continue
}
