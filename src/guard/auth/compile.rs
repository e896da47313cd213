//! `[auth.NAME]` → [`Authorizer`]: checks each field against the authorizer's type
//! and reports mistakes with the file, line and field.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::jwks::{JwksRegistry, Source as JwksSource};
use super::jwt::{JwtAuth, TokenSource};
use super::Authorizer;
use crate::config::{AuthConfig, ConfigError, Source, Spanned};

/// Fields each type accepts (besides `type`).
const JWT_FIELDS: &[&str] = &[
    "issuer",
    "audiences",
    "jwks_url",
    "jwks_file",
    "algorithms",
    "leeway",
    "forward_claims",
    "token",
    "forward_authorization",
    "jwks_refresh",
];

pub fn compile(
    name: &str,
    a: &AuthConfig,
    source: &Source,
    jwks: &JwksRegistry,
) -> Result<Authorizer, ConfigError> {
    let field = |f: &str| format!("auth.{name}.{f}");
    let kind = a.kind.get_ref().as_str();
    let present = present_fields(a);
    let allowed: &[&str] = match kind {
        "jwt" => JWT_FIELDS,
        "sigv4" | "external" | "mtls" => {
            return Err(source.error_at(
                a.kind.span(),
                &field("type"),
                format!("type {kind:?} is not supported by this build yet (supported: \"jwt\")"),
            ))
        }
        other => {
            return Err(source.error_at(
                a.kind.span(),
                &field("type"),
                format!("unknown authorizer type {other:?} (jwt, sigv4, external, mtls)"),
            ))
        }
    };
    if let Some(f) = present.iter().find(|f| !allowed.contains(f)) {
        return Err(source.error_at(
            a.kind.span(),
            &field(f),
            format!("{f} does not apply to type {kind:?}"),
        ));
    }
    compile_jwt(name, a, source, jwks).map(Authorizer::Jwt)
}

fn present_fields(a: &AuthConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |on: bool, f: &'static str| {
        if on {
            v.push(f);
        }
    };
    add(a.issuer.is_some(), "issuer");
    add(!a.audiences.is_empty(), "audiences");
    add(a.jwks_url.is_some(), "jwks_url");
    add(a.jwks_file.is_some(), "jwks_file");
    add(a.algorithms.is_some(), "algorithms");
    add(a.leeway.is_some(), "leeway");
    add(a.forward_claims.is_some(), "forward_claims");
    add(a.token.is_some(), "token");
    add(a.forward_authorization.is_some(), "forward_authorization");
    add(a.jwks_refresh.is_some(), "jwks_refresh");
    add(a.region.is_some(), "region");
    add(a.service.is_some(), "service");
    add(a.credentials.is_some(), "credentials");
    add(a.max_skew.is_some(), "max_skew");
    add(a.allow_unsigned_payload.is_some(), "allow_unsigned_payload");
    add(a.max_signed_body.is_some(), "max_signed_body");
    add(a.url.is_some(), "url");
    add(a.identity.is_some(), "identity");
    add(a.cache_ttl.is_some(), "cache_ttl");
    add(a.timeout.is_some(), "timeout");
    add(a.failure_mode.is_some(), "failure_mode");
    add(a.forward_headers.is_some(), "forward_headers");
    add(
        a.response_headers_prefix.is_some(),
        "response_headers_prefix",
    );
    add(a.subjects.is_some(), "subjects");
    v
}

fn required<'a, T>(
    v: &'a Option<Spanned<T>>,
    source: &Source,
    span: std::ops::Range<usize>,
    field: &str,
) -> Result<&'a Spanned<T>, ConfigError> {
    v.as_ref()
        .ok_or_else(|| source.error_at(span, field, "required for this type"))
}

fn compile_jwt(
    name: &str,
    a: &AuthConfig,
    source: &Source,
    registry: &JwksRegistry,
) -> Result<JwtAuth, ConfigError> {
    let field = |f: &str| format!("auth.{name}.{f}");
    let issuer = required(&a.issuer, source, a.kind.span(), &field("issuer"))?;
    let refresh = a
        .jwks_refresh
        .map_or(Duration::from_secs(600), |d| d.0)
        .max(Duration::from_secs(30));
    let jwks_source = match (&a.jwks_url, &a.jwks_file) {
        (Some(u), None) => {
            let url = u.get_ref();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(source.error_at(
                    u.span(),
                    &field("jwks_url"),
                    "expected an http:// or https:// URL",
                ));
            }
            (JwksSource::Url(url.clone()), u.span(), "jwks_url")
        }
        (None, Some(f)) => (
            JwksSource::File(source.dir().join(f.get_ref())),
            f.span(),
            "jwks_file",
        ),
        (Some(u), Some(_)) => {
            return Err(source.error_at(
                u.span(),
                &field("jwks_url"),
                "set either jwks_url or jwks_file, not both",
            ))
        }
        (None, None) => {
            return Err(source.error_at(
                a.kind.span(),
                &field("jwks_url"),
                "a jwt authorizer needs jwks_url or jwks_file",
            ))
        }
    };
    let (jsrc, jspan, jfield) = jwks_source;
    let jwks = registry
        .get(jsrc, refresh)
        .map_err(|e| source.error_at(jspan, &field(jfield), e))?;

    let algorithms = match &a.algorithms {
        None => vec![Algorithm::RS256],
        Some(list) => {
            let mut out = Vec::new();
            for s in list.get_ref() {
                let alg: Algorithm = s.parse().map_err(|_| {
                    source.error_at(
                        list.span(),
                        &field("algorithms"),
                        format!("unknown algorithm {s:?} (RS256, PS256, ES256, EdDSA, HS256, …; never \"none\")"),
                    )
                })?;
                out.push(alg);
            }
            if out.is_empty() {
                return Err(source.error_at(
                    list.span(),
                    &field("algorithms"),
                    "at least one algorithm is required",
                ));
            }
            out
        }
    };
    let mut forward_claims = Vec::new();
    if let Some(fc) = &a.forward_claims {
        for (claim, header) in fc.get_ref() {
            let ok = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !crate::http::is_hop_by_hop(header.as_bytes());
            if !ok {
                return Err(source.error_at(
                    fc.span(),
                    &field("forward_claims"),
                    format!("invalid header name {header:?} for claim {claim:?}"),
                ));
            }
            forward_claims.push((claim.clone(), header.to_ascii_lowercase()));
        }
    }
    let token = match &a.token {
        None => TokenSource::Bearer(b"authorization"[..].into()),
        Some(t) => TokenSource::parse(t.get_ref()).ok_or_else(|| {
            source.error_at(
                t.span(),
                &field("token"),
                "expected \"header:NAME\", \"query:NAME\" or \"cookie:NAME\"",
            )
        })?,
    };
    Ok(JwtAuth::new(
        issuer.get_ref().clone(),
        a.audiences.clone(),
        algorithms,
        a.leeway.map_or(60, |d| d.0.as_secs()),
        forward_claims,
        token,
        a.forward_authorization.unwrap_or(false),
        jwks,
    ))
}

/// The authorizers of a config, by name.
pub type Authorizers = std::collections::BTreeMap<String, Arc<Authorizer>>;
