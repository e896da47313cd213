//! `[auth.NAME]` → [`Authorizer`]: checks each field against the authorizer's type
//! and reports mistakes with the file, line and field.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::external::{self, ExternalAuth};
use super::jwks::{JwksRegistry, Source as JwksSource};
use super::jwt::{JwtAuth, TokenSource};
use super::sigv4;
use super::Authorizer;
use super::SigV4Auth;
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
        "external" => EXTERNAL_FIELDS,
        "sigv4" => SIGV4_FIELDS,
        "mtls" => &["subjects"],
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
    match kind {
        "external" => compile_external(name, a, source).map(Authorizer::External),
        "sigv4" => compile_sigv4(name, a, source).map(Authorizer::Sigv4),
        "mtls" => Ok(Authorizer::Mtls(super::MtlsAuth {
            subjects: a.subjects.clone().unwrap_or_default(),
        })),
        _ => compile_jwt(name, a, source, jwks).map(Authorizer::Jwt),
    }
}

const SIGV4_FIELDS: &[&str] = &[
    "region",
    "service",
    "credentials",
    "max_skew",
    "allow_unsigned_payload",
    "max_signed_body",
];

fn compile_sigv4(name: &str, a: &AuthConfig, source: &Source) -> Result<SigV4Auth, ConfigError> {
    let field = |f: &str| format!("auth.{name}.{f}");
    let region = required(&a.region, source, a.kind.span(), &field("region"))?;
    let service = required(&a.service, source, a.kind.span(), &field("service"))?;
    let creds_ref = required(&a.credentials, source, a.kind.span(), &field("credentials"))?;
    let text = crate::config::secret::resolve(source, creds_ref, &field("credentials"))?;
    let credentials = sigv4::Credentials::parse(&text).map_err(|e| {
        source.error_at(
            creds_ref.span(),
            &field("credentials"),
            format!("{}: {e}", creds_ref.get_ref()),
        )
    })?;
    if credentials.is_empty() {
        return Err(source.error_at(
            creds_ref.span(),
            &field("credentials"),
            "no [[key]] in the credentials",
        ));
    }
    let mut settings = sigv4::Settings::new(region.get_ref().as_str(), service.get_ref().as_str());
    if let Some(d) = a.max_skew {
        settings.max_skew_secs = d.0.as_secs().max(1);
    }
    settings.allow_unsigned_payload = a.allow_unsigned_payload.unwrap_or(false);
    Ok(SigV4Auth {
        settings,
        credentials,
        max_body: a.max_signed_body.map_or(1 << 20, |b| b.0),
    })
}

const EXTERNAL_FIELDS: &[&str] = &[
    "url",
    "identity",
    "cache_ttl",
    "timeout",
    "failure_mode",
    "forward_headers",
    "response_headers_prefix",
];

fn compile_external(
    name: &str,
    a: &AuthConfig,
    source: &Source,
) -> Result<ExternalAuth, ConfigError> {
    use std::net::ToSocketAddrs;
    let field = |f: &str| format!("auth.{name}.{f}");
    let url = required(&a.url, source, a.kind.span(), &field("url"))?;
    let bad_url = |m: &str| source.error_at(url.span(), &field("url"), m.to_string());
    let rest = url.get_ref().strip_prefix("http://").ok_or_else(|| {
        bad_url("expected http://host:port/path (https to authorizers is not supported yet)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.contains([' ', '#']) {
        return Err(bad_url("expected http://host:port/path"));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad_url(&format!("cannot resolve {authority:?}")))?;
    let identity_list = required(&a.identity, source, a.kind.span(), &field("identity"))?;
    let mut identity = Vec::new();
    for s in identity_list.get_ref() {
        let src = external::parse_identity(s).ok_or_else(|| {
            source.error_at(
                identity_list.span(),
                &field("identity"),
                format!("invalid identity source {s:?} (header:NAME, query:NAME, cookie:NAME)"),
            )
        })?;
        identity.push((s.clone(), src));
    }
    if identity.is_empty() {
        return Err(source.error_at(
            identity_list.span(),
            &field("identity"),
            "at least one identity source is required",
        ));
    }
    let fail_open = match a.failure_mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("deny") => false,
        Some("allow") => true,
        Some(other) => {
            let m = a.failure_mode.as_ref().expect("present");
            return Err(source.error_at(
                m.span(),
                &field("failure_mode"),
                format!("expected \"deny\" or \"allow\", not {other:?}"),
            ));
        }
    };
    let prefix = a
        .response_headers_prefix
        .as_ref()
        .map_or("x-auth-".to_string(), |p| p.get_ref().to_ascii_lowercase());
    Ok(ExternalAuth {
        cache_id: next_cache_id(),
        addr,
        host: authority.to_string(),
        path: path.to_string(),
        identity,
        cache_ttl: a.cache_ttl.map_or(Duration::from_secs(300), |d| d.0),
        timeout: a.timeout.map_or(Duration::from_secs(1), |d| {
            d.0.max(Duration::from_millis(10))
        }),
        fail_open,
        forward_headers: a
            .forward_headers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        response_prefix: prefix,
    })
}

fn next_cache_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static IDS: AtomicU64 = AtomicU64::new(1);
    IDS.fetch_add(1, Ordering::Relaxed)
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
    Ok(JwtAuth {
        cache_id: JwtAuth::next_cache_id(),
        issuer: issuer.get_ref().clone(),
        audiences: a.audiences.clone(),
        algorithms,
        leeway: a.leeway.map_or(60, |d| d.0.as_secs()),
        forward_claims,
        token,
        forward_authorization: a.forward_authorization.unwrap_or(false),
        jwks,
    })
}

/// The authorizers of a config, by name.
pub type Authorizers = std::collections::BTreeMap<String, Arc<Authorizer>>;
