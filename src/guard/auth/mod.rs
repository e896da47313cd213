//! Authentication: the route's authorizer (`auth = "NAME"`, an `[auth.NAME]`
//! section) establishes who is calling; [`crate::guard::authorize`] then decides
//! with the route's `scopes` and `claims` whether they may.
//!
//! Authorizers: [`jwt`] (bearer tokens checked against a JWKS, see [`jwks`]),
//! [`sigv4`] (AWS Signature Version 4), [`external`] (a Lambda-authorizer-style
//! HTTP call) and [`mtls`] (the connection's verified client certificate, whose
//! subject or SAN must match `subjects`; 403 otherwise).
//!
//! Answers: 401 `{"message":"Unauthorized"}` with `WWW-Authenticate` when
//! credentials are missing or invalid; 403 `{"message":"Forbidden"}` when a valid
//! identity lacks a required scope or claim. The reason is logged at debug level,
//! never a token or a secret.

pub mod compile;
pub mod external;
pub mod jwks;
pub mod jwt;
pub mod mtls;
pub mod sigv4;

use std::cell::RefCell;
use std::sync::Arc;

use super::{Reason, RequestCtx, Verdict};
use crate::http::reply::Reply;
use crate::http::request::HeaderRole;

pub use jwt::{Claims, JwtAuth};
pub use mtls::MtlsAuth;

/// A compiled `[auth.NAME]`.
#[derive(Debug)]
pub enum Authorizer {
    Jwt(JwtAuth),
    Sigv4(SigV4Auth),
    External(external::ExternalAuth),
    Mtls(MtlsAuth),
}

/// A compiled `type = "sigv4"` authorizer.
#[derive(Debug)]
pub struct SigV4Auth {
    pub settings: sigv4::Settings,
    pub credentials: sigv4::Credentials,
    /// The largest signed body buffered to check its hash; larger bodies must be
    /// sent as `UNSIGNED-PAYLOAD` (when allowed).
    pub max_body: u64,
}

impl Authorizer {
    /// The most body bytes this authorizer needs buffered before it can decide
    /// (a signed payload's hash), if any.
    pub fn body_to_buffer(&self) -> Option<u64> {
        match self {
            Authorizer::Sigv4(s) => Some(s.max_body),
            _ => None,
        }
    }
}

/// What an authorizer established about the caller, for later stages.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The verified claims of a JWT.
    pub claims: Option<Arc<Claims>>,
    /// Who the request is, for the access log's `identity` (JWT `sub`, SigV4
    /// principal, mTLS subject, API key name); set only when there is an
    /// access log to write it to.
    pub principal: Option<String>,
}

/// A core's authentication state: verified tokens (and, for external authorizers,
/// cached decisions and pooled connections).
pub struct CoreState {
    pub tokens: RefCell<jwt::TokenCache>,
    pub external: external::ExternalState,
    pub waf: crate::guard::waf::WafState,
}

impl CoreState {
    pub fn new(timers: std::rc::Rc<crate::time::Timers>) -> CoreState {
        CoreState {
            tokens: RefCell::default(),
            external: external::ExternalState::new(timers),
            waf: Default::default(),
        }
    }
}

/// 401 with a challenge.
pub fn unauthorized(challenge: &str) -> Reply {
    Reply::error(401).with_header("www-authenticate", challenge)
}

fn refuse_401(name: &str, detail: &str, reason: Reason, challenge: &str) -> Verdict {
    tracing::debug!(authorizer = name, reason = detail, "authentication failed");
    Verdict::Deny(unauthorized(challenge), reason)
}

/// A SigV4 failure as a metric reason.
fn sigv4_reason(f: sigv4::Failure) -> Reason {
    match f {
        sigv4::Failure::Missing => Reason::AuthMissing,
        sigv4::Failure::UnknownKey => Reason::UnknownAccessKey,
        sigv4::Failure::Expired => Reason::AuthExpired,
        sigv4::Failure::BadSignature | sigv4::Failure::PayloadMismatch => Reason::BadSignature,
        _ => Reason::AuthInvalid,
    }
}

/// The value of `source` in the request.
fn value_of<'a>(ctx: &RequestCtx<'a>, source: &jwt::TokenSource) -> Option<&'a [u8]> {
    let head = ctx.head;
    let headers = &*ctx.headers;
    jwt::find_token(
        source,
        |n| {
            headers
                .iter()
                .find(|h| {
                    h.role != HeaderRole::HopByHop && h.name.get(head).eq_ignore_ascii_case(n)
                })
                .map(|h| h.value.get(head))
        },
        ctx.query,
    )
}

/// Runs the route's authorizer.
pub async fn authenticate(name: &str, auth: &Authorizer, ctx: &mut RequestCtx<'_>) -> Verdict {
    match auth {
        Authorizer::Mtls(m) => {
            let v = m.check(name, ctx.client_cert);
            if matches!(v, Verdict::Continue) && ctx.audit.is_some() {
                ctx.identity.principal = ctx.client_cert.map(|c| c.subject.clone());
            }
            v
        }
        Authorizer::Sigv4(s) => {
            let head = ctx.head;
            let all: Vec<(&[u8], &[u8])> = ctx
                .headers
                .iter()
                .map(|h| (h.name.get(head), h.value.get(head)))
                .collect();
            let req = sigv4::SignedRequest {
                method: ctx.method,
                path: ctx.raw_path,
                query: ctx.query,
                headers: &all,
                body: ctx.body.filter(|_| ctx.body_complete),
                has_body: ctx.has_body,
            };
            match sigv4::verify(&req, &s.credentials, &s.settings, ctx.shard.unix_now()) {
                Ok(key) => {
                    for h in ctx.headers.iter_mut() {
                        let n = h.name.get(head);
                        if n.eq_ignore_ascii_case(b"authorization")
                            || n.eq_ignore_ascii_case(b"x-principal")
                        {
                            h.role = HeaderRole::Credential;
                        }
                    }
                    let adds = &mut ctx.additions.upstream;
                    adds.push_str("x-principal: ");
                    adds.push_str(&key.principal);
                    adds.push_str("\r\n");
                    if ctx.audit.is_some() {
                        ctx.identity.principal = Some(key.principal.to_string());
                    }
                    Verdict::Continue
                }
                Err(f) => refuse_401(name, f.reason(), sigv4_reason(f), "AWS4-HMAC-SHA256"),
            }
        }
        Authorizer::External(ext) => {
            let mut identity: Vec<&[u8]> = Vec::with_capacity(ext.identity.len());
            for (label, src) in &ext.identity {
                match value_of(ctx, src) {
                    Some(v) if !v.is_empty() => identity.push(v),
                    _ => {
                        tracing::debug!(authorizer = name, source = %label, "identity source missing");
                        return Verdict::Deny(unauthorized("Bearer"), Reason::AuthMissing);
                    }
                }
            }
            let head = ctx.head;
            let forwarded: Vec<(&str, &[u8])> = ext
                .forward_headers
                .iter()
                .filter_map(|n| {
                    ctx.headers
                        .iter()
                        .find(|h| h.name.get(head).eq_ignore_ascii_case(n.as_bytes()))
                        .map(|h| (n.as_str(), h.value.get(head)))
                })
                .collect();
            let q = external::Question {
                identity: &identity,
                method: ctx.method,
                path: ctx.path,
                client_ip: ctx.client_ip,
                request_id: ctx.request_id,
                headers: &forwarded,
            };
            let (decision, cached) = ext.decide(&ctx.auth.external, &q).await;
            if let Some(hit) = cached {
                let family = if hit {
                    "portcullis_authorizer_cache_hits_total"
                } else {
                    "portcullis_authorizer_cache_misses_total"
                };
                ctx.counters.bump(family, &[("authorizer", name)]);
            }
            match decision {
                external::Decision::Allow(lines) => {
                    // Headers under the prefix are the authorizer's to set.
                    let prefix = ext.response_prefix.as_bytes();
                    for h in ctx.headers.iter_mut() {
                        let n = h.name.get(head);
                        if !prefix.is_empty()
                            && n.len() >= prefix.len()
                            && n[..prefix.len()].eq_ignore_ascii_case(prefix)
                        {
                            h.role = HeaderRole::Credential;
                        }
                    }
                    ctx.additions.upstream.push_str(&lines);
                    Verdict::Continue
                }
                external::Decision::Deny(401, challenge) => {
                    tracing::debug!(authorizer = name, "external authorizer: 401");
                    Verdict::Deny(
                        unauthorized(challenge.as_deref().unwrap_or("Bearer")),
                        Reason::AuthorizerDenied,
                    )
                }
                external::Decision::Deny(status, _) => {
                    tracing::debug!(authorizer = name, status, "external authorizer: denied");
                    Verdict::Deny(Reply::error(403), Reason::AuthorizerDenied)
                }
            }
        }
        Authorizer::Jwt(jwt) => {
            let head = ctx.head;
            let token = {
                let headers = &*ctx.headers;
                jwt::find_token(
                    &jwt.token,
                    |n| {
                        headers
                            .iter()
                            .find(|h| {
                                h.role != HeaderRole::HopByHop
                                    && h.name.get(head).eq_ignore_ascii_case(n)
                            })
                            .map(|h| h.value.get(head))
                    },
                    ctx.query,
                )
            };
            let Some(token) = token else {
                return refuse_401(
                    name,
                    "missing token",
                    Reason::AuthMissing,
                    "Bearer error=\"invalid_request\"",
                );
            };
            let verdict = {
                let mut cache = ctx.auth.tokens.borrow_mut();
                jwt.verify(token, &mut cache, ctx.shard.unix_now())
            };
            match verdict {
                Ok(claims) => {
                    // The credential stays here unless configured otherwise, and
                    // the identity headers are ours to set.
                    for h in ctx.headers.iter_mut() {
                        let n = h.name.get(head);
                        let is_token_header = match &jwt.token {
                            jwt::TokenSource::Bearer(t) | jwt::TokenSource::Header(t) => {
                                n.eq_ignore_ascii_case(t) && !jwt.forward_authorization
                            }
                            _ => false,
                        };
                        if is_token_header
                            || jwt
                                .forward_claims
                                .iter()
                                .any(|(_, hn)| n.eq_ignore_ascii_case(hn.as_bytes()))
                        {
                            h.role = HeaderRole::Credential;
                        }
                    }
                    ctx.additions.upstream.push_str(&claims.upstream);
                    if ctx.audit.is_some() {
                        ctx.identity.principal = claims
                            .map
                            .get("sub")
                            .and_then(|v| v.as_str())
                            .map(str::to_string);
                    }
                    ctx.identity.claims = Some(claims);
                    Verdict::Continue
                }
                Err(jwt::Refusal::Missing) => refuse_401(
                    name,
                    "missing token",
                    Reason::AuthMissing,
                    "Bearer error=\"invalid_request\"",
                ),
                Err(jwt::Refusal::Invalid(reason)) => refuse_401(
                    name,
                    reason,
                    if reason == "expired" {
                        Reason::AuthExpired
                    } else {
                        Reason::AuthInvalid
                    },
                    "Bearer error=\"invalid_token\"",
                ),
            }
        }
    }
}
