//! Inbound AWS Signature Version 4 verification: what AWS API Gateway's IAM
//! authorization does with a request a client signed with its access key.
//!
//! SigV4 is a MAC over a canonical form of the request. The verifier rebuilds
//! what the client signed, from the request as received, and checks the tag:
//!
//! 1. **Canonical request**: `METHOD \n canonical URI \n canonical query \n
//!    canonical headers \n signed header names \n payload hash`. The URI is the
//!    received path with dot segments removed and slashes merged, each segment
//!    URI-encoded once more (the client signed its already-encoded path, so
//!    `%20` is signed as `%2520`); for service `s3` the path is neither
//!    normalized nor double-encoded (each segment is decoded and encoded once).
//!    The query's names and values are decoded, re-encoded with the RFC 3986
//!    unreserved set and sorted by name, then value. Only the headers named in
//!    `SignedHeaders` count: lower-case names, values trimmed with inner runs of
//!    spaces collapsed, repeated headers joined with `,`. The payload hash is
//!    `x-amz-content-sha256` when sent, else the SHA-256 of the body; a
//!    presigned URL's is `UNSIGNED-PAYLOAD` (or the empty-body hash, which
//!    botocore's generic presigner signs: both are tried).
//! 2. **String to sign**: `AWS4-HMAC-SHA256 \n x-amz-date \n
//!    date/region/service/aws4_request \n hex(SHA-256(canonical request))`.
//! 3. **Signing key**: HMAC-SHA256 chained from `"AWS4" + secret` over the
//!    scope's date, region, service and `aws4_request`.
//! 4. **Compare**: HMAC-SHA256(signing key, string to sign) against the
//!    request's `Signature`, in constant time.
//!
//! Before the MAC, the credential scope must name this gateway's region and
//! service and the request's own date, and the date must be within
//! `max_skew_secs` of now (a presigned URL: not in the future beyond the skew,
//! and not past `X-Amz-Date + X-Amz-Expires`, at most 7 days). Both forms are
//! accepted: the `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…` header with `x-amz-date`, and the presigned URL with the
//! `X-Amz-*` query parameters.
//!
//! What it does **not** do:
//! - No `Date` header: the time must come from `x-amz-date` (or `X-Amz-Date` in
//!   a presigned URL); a request dated only by `Date` is `Malformed`.
//! - No SigV4A (`AWS4-ECDSA-P256-SHA256`), no streaming or chunk-signed
//!   payloads (`STREAMING-*` is `Malformed`), no S3 POST policies.
//! - No session tokens: `x-amz-security-token` is signed like any header but
//!   not validated; only the long-term keys of the credentials file are known,
//!   so temporary (STS) credentials fail as `UnknownKey`.
//! - No replay protection within the skew window, no IAM policy evaluation:
//!   it answers who signed, not what they may do.
//! - It does not read the network: the caller hands it the request and, when
//!   [`needs_body`] says so, the buffered body.
//!
//! Every input is hostile: lengths and counts are bounded, nothing indexes
//! unchecked, and every problem is a [`Failure`], never a panic.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_lc_rs::{digest, hmac};
use serde::Deserialize;
use toml::Spanned;

mod canonical;
mod credentials;
mod parse;
#[cfg(test)]
mod tests;

use canonical::*;
pub use credentials::{AccessKey, Credentials};
use parse::*;

/// The one algorithm accepted, in the header and in `X-Amz-Algorithm`.
const ALGORITHM: &[u8] = b"AWS4-HMAC-SHA256";
/// The last element of every credential scope.
const TERMINATOR: &[u8] = b"aws4_request";
const UNSIGNED_PAYLOAD: &[u8] = b"UNSIGNED-PAYLOAD";
/// Hex SHA-256 of the empty string.
const EMPTY_SHA256: &[u8] = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Longest `Authorization` value (and decoded presigned parameter) looked at.
const MAX_AUTHORIZATION_LEN: usize = 4096;
/// Most names in `SignedHeaders`.
const MAX_SIGNED_HEADERS: usize = 64;
/// Most query parameters canonicalized.
const MAX_QUERY_PARAMS: usize = 1024;
/// Longest access key id (AWS allows 16 to 128 characters).
const MAX_KEY_ID_LEN: usize = 128;
/// Longest life of a presigned URL: 7 days.
const MAX_PRESIGNED_EXPIRES: u64 = 604_800;

// ---------------------------------------------------------------------------
// The request and the answer

/// What a route's SigV4 authorizer checks against.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The region every credential scope must name (e.g. `us-east-1`).
    pub region: String,
    /// The service every credential scope must name (e.g. `execute-api`).
    /// `s3` switches to S3's canonical URI (no normalization, single encoding).
    pub service: String,
    /// How far `x-amz-date` may be from now, either way.
    pub max_skew_secs: u64,
    /// Accept `x-amz-content-sha256: UNSIGNED-PAYLOAD` (and presigned URLs
    /// carrying a body): the body is then not covered by the signature.
    pub allow_unsigned_payload: bool,
}

impl Settings {
    /// AWS's own tolerance: 5 minutes.
    pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;

    /// Settings for `region` and `service`, with the default skew and signed payloads only.
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Settings {
        Settings {
            region: region.into(),
            service: service.into(),
            max_skew_secs: Self::DEFAULT_MAX_SKEW_SECS,
            allow_unsigned_payload: false,
        }
    }
}

impl Default for Settings {
    /// No region or service (every scope is then wrong), the default skew.
    fn default() -> Settings {
        Settings::new("", "")
    }
}

/// What verify sees of the request.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a [u8],
    /// Exactly as sent on the request line (raw, percent-encoded as the client sent it).
    pub path: &'a [u8],
    /// Exactly as sent, without '?'; may be empty.
    pub query: &'a [u8],
    /// Every header as (name, value) in the order received, names as sent (any case).
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// The request body if the caller buffered it (needed when
    /// x-amz-content-sha256 is a hex digest or absent in the header form with a
    /// body), else None.
    pub body: Option<&'a [u8]>,
    pub has_body: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No `Authorization: AWS4-HMAC-SHA256` header and no `X-Amz-Algorithm` query parameter.
    Missing,
    Malformed,
    UnknownKey,
    /// Region, service or terminator mismatch, or the scope's date is not x-amz-date's.
    WrongScope,
    /// x-amz-date outside ±max_skew, or a presigned URL past X-Amz-Expires.
    Expired,
    BadSignature,
    /// The body's hash is not x-amz-content-sha256.
    PayloadMismatch,
    UnsignedPayloadRefused,
    /// The caller must buffer the body and call again.
    BodyNeeded,
}

impl Failure {
    /// Short log text.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Malformed => "malformed",
            Failure::UnknownKey => "unknown access key",
            Failure::WrongScope => "wrong credential scope",
            Failure::Expired => "expired or future date",
            Failure::BadSignature => "signature mismatch",
            Failure::PayloadMismatch => "payload hash mismatch",
            Failure::UnsignedPayloadRefused => "unsigned payload not allowed",
            Failure::BodyNeeded => "body needed",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Failure {}

// ---------------------------------------------------------------------------
// Entry points

/// Does the request need its body buffered before verify can finish? True when
/// it is SigV4 (header form) with a body and x-amz-content-sha256 is a 64-hex
/// digest (or absent: then the payload hash is SHA-256 of the body, as botocore
/// computes). False for UNSIGNED-PAYLOAD, presigned URLs (their body is never
/// hashed), no body, or a request verify refuses without the body
/// (not SigV4, both forms at once, a malformed x-amz-content-sha256). It does
/// not look at `body`.
pub fn needs_body(req: &SignedRequest<'_>) -> bool {
    if !req.has_body || detect(req) != Detected::Header {
        return false;
    }
    let mut values = header_values(req.headers, b"x-amz-content-sha256");
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => is_hex(trim(v), 64),
        (Some(_), Some(_)) => false,
    }
}

/// Verifies; on success returns the key (for its principal).
///
/// Checks run in this order, the first failing one answering: the form
/// (`Missing`, `Malformed`), the credential scope (`WrongScope`), the clock
/// (`Expired`), the key (`UnknownKey`), the payload mode
/// (`UnsignedPayloadRefused`, and `BodyNeeded` when the payload hash must be
/// computed from a body not given), the signature (`BadSignature`), then the
/// body against a claimed x-amz-content-sha256 (`BodyNeeded`,
/// `PayloadMismatch`). So a forged request is refused before its body is read.
pub fn verify<'c>(
    req: &SignedRequest<'_>,
    creds: &'c Credentials,
    settings: &Settings,
    now_unix: u64,
) -> Result<&'c AccessKey, Failure> {
    let auth = match detect(req) {
        Detected::None => return Err(Failure::Missing),
        Detected::Ambiguous => return Err(Failure::Malformed),
        Detected::Header => parse_header_form(req)?,
        Detected::Query => parse_query_form(req.query)?,
    };
    let scope = auth.scope()?;
    let s3 = settings.service == "s3";

    if scope.date != auth.date.get(..8).unwrap_or_default()
        || scope.region != settings.region.as_bytes()
        || scope.service != settings.service.as_bytes()
        || scope.terminator != TERMINATOR
    {
        return Err(Failure::WrongScope);
    }

    let signed_at = i128::from(auth.unix);
    let now = i128::from(now_unix);
    let skew = i128::from(settings.max_skew_secs);
    let in_time = match auth.expires {
        None => (now - signed_at).abs() <= skew,
        Some(expires) => signed_at - skew <= now && now <= signed_at + i128::from(expires),
    };
    if !in_time {
        return Err(Failure::Expired);
    }

    let key_id = std::str::from_utf8(scope.key_id).map_err(|_| Failure::UnknownKey)?;
    let key = creds.get(key_id).ok_or(Failure::UnknownKey)?;

    let payload = payload_plan(req, auth.expires.is_some(), settings)?;
    let mut creq = Vec::with_capacity(
        256 + req.path.len() + 2 * req.query.len() + 64 * auth.signed_names().count(),
    );
    canonical_prefix(
        req,
        s3,
        auth.expires.is_some(),
        &auth.signed_headers,
        &mut creq,
    )?;
    let prefix_len = creq.len();
    let signing_key = signing_key(&key.secret, scope.date, scope.region, scope.service);
    let mut matched = false;
    for candidate in std::iter::once(payload.line.as_bytes()).chain(payload.alternative) {
        creq.truncate(prefix_len);
        creq.extend_from_slice(candidate);
        let sts = string_to_sign(&auth.date, &scope, &creq);
        // Constant time: aws-lc compares the tags without an early exit.
        matched |= hmac::verify(&signing_key, &sts, &auth.signature).is_ok();
    }
    if !matched {
        return Err(Failure::BadSignature);
    }

    if let Some(claimed) = payload.claimed {
        let body = match (req.has_body, req.body) {
            (true, None) => return Err(Failure::BodyNeeded),
            (_, body) => body.unwrap_or_default(),
        };
        let mut actual = [0u8; 64];
        crate::hex::encode_into(digest::digest(&digest::SHA256, body).as_ref(), &mut actual);
        if !actual.eq_ignore_ascii_case(claimed) {
            return Err(Failure::PayloadMismatch);
        }
    }
    Ok(key)
}

/// The payload hash line of the canonical request.
enum PayloadLine<'a> {
    Fixed(&'static [u8]),
    /// x-amz-content-sha256 as sent.
    Header(&'a [u8]),
    /// Hex SHA-256 of the body.
    Computed([u8; 64]),
}

impl PayloadLine<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            PayloadLine::Fixed(b) => b,
            PayloadLine::Header(b) => b,
            PayloadLine::Computed(b) => b,
        }
    }
}

/// How the payload enters the signature.
struct PayloadPlan<'a> {
    line: PayloadLine<'a>,
    /// A second line to try: a presigned URL without a body is signed with
    /// UNSIGNED-PAYLOAD by S3-style presigners and with the empty-body hash by
    /// botocore's generic one.
    alternative: Option<&'static [u8]>,
    /// The digest the client claimed in x-amz-content-sha256, which the body
    /// must have once the signature holds.
    claimed: Option<&'a [u8]>,
}

fn payload_plan<'a>(
    req: &SignedRequest<'a>,
    presigned: bool,
    settings: &Settings,
) -> Result<PayloadPlan<'a>, Failure> {
    let plan = |line, alternative, claimed| PayloadPlan {
        line,
        alternative,
        claimed,
    };
    if presigned {
        return if !req.has_body {
            Ok(plan(
                PayloadLine::Fixed(UNSIGNED_PAYLOAD),
                Some(EMPTY_SHA256),
                None,
            ))
        } else if settings.allow_unsigned_payload {
            Ok(plan(PayloadLine::Fixed(UNSIGNED_PAYLOAD), None, None))
        } else {
            Err(Failure::UnsignedPayloadRefused)
        };
    }
    let mut values = header_values(req.headers, b"x-amz-content-sha256");
    match (values.next().map(trim), values.next()) {
        (Some(_), Some(_)) => Err(Failure::Malformed),
        (Some(v), None) if v == UNSIGNED_PAYLOAD => {
            if settings.allow_unsigned_payload {
                Ok(plan(PayloadLine::Fixed(UNSIGNED_PAYLOAD), None, None))
            } else {
                Err(Failure::UnsignedPayloadRefused)
            }
        }
        (Some(v), None) if is_hex(v, 64) => Ok(plan(PayloadLine::Header(v), None, Some(v))),
        // STREAMING-AWS4-HMAC-SHA256-PAYLOAD and the like, or junk.
        (Some(_), None) => Err(Failure::Malformed),
        (None, _) => {
            let body = match (req.has_body, req.body) {
                (true, None) => return Err(Failure::BodyNeeded),
                (_, body) => body.unwrap_or_default(),
            };
            let mut hex = [0u8; 64];
            crate::hex::encode_into(digest::digest(&digest::SHA256, body).as_ref(), &mut hex);
            Ok(plan(PayloadLine::Computed(hex), None, None))
        }
    }
}

// ---------------------------------------------------------------------------
