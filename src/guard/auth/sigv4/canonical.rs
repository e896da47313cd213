//! The canonical request, string to sign and signing key, and the byte helpers they use.

use super::*;

/// The canonical request up to (and with the newline before) the payload hash.
pub(super) fn canonical_prefix(
    req: &SignedRequest<'_>,
    s3: bool,
    presigned: bool,
    signed_headers: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    out.extend_from_slice(req.method);
    out.push(b'\n');
    canonical_uri(req.path, s3, out)?;
    out.push(b'\n');
    canonical_query(req.query, presigned, out)?;
    out.push(b'\n');
    for name in signed_headers.split(|&b| b == b';') {
        out.extend_from_slice(name);
        out.push(b':');
        let mut found = false;
        for value in header_values(req.headers, name) {
            if found {
                out.push(b',');
            }
            found = true;
            push_trimmed(value, out);
        }
        if !found {
            return Err(Failure::Malformed);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers);
    out.push(b'\n');
    Ok(())
}

/// Non-S3: dot segments removed and empty segments dropped (as botocore's
/// `normalize_url_path`, which the AWS test suite follows), then every byte
/// outside the unreserved set encoded, the received escapes included. S3: each
/// segment decoded and encoded once, nothing removed.
pub(super) fn canonical_uri(path: &[u8], s3: bool, out: &mut Vec<u8>) -> Result<(), Failure> {
    if path.is_empty() {
        out.push(b'/');
        return Ok(());
    }
    if s3 {
        for (i, segment) in path.split(|&b| b == b'/').enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            uri_encode(&percent_decode(segment)?, out);
        }
        return Ok(());
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if path.first() == Some(&b'/') {
        out.push(b'/');
    }
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        uri_encode(segment, out);
    }
    if path.last() == Some(&b'/') && !segments.is_empty() {
        out.push(b'/');
    }
    Ok(())
}

/// Each name and value decoded then encoded, sorted by name then value,
/// `name=value` joined by `&`; a parameter without `=` has an empty value, an
/// empty pair (`a&&b`) is signed as `=`. A presigned URL's X-Amz-Signature is left out.
pub(super) fn canonical_query(
    query: &[u8],
    presigned: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, value) in query_pairs(query) {
        if params.len() == MAX_QUERY_PARAMS {
            return Err(Failure::Malformed);
        }
        if presigned && decoded_eq(name, b"X-Amz-Signature") {
            continue;
        }
        let (mut n, mut v) = (
            Vec::with_capacity(name.len()),
            Vec::with_capacity(value.len()),
        );
        uri_encode(&percent_decode(name)?, &mut n);
        uri_encode(&percent_decode(value)?, &mut v);
        params.push((n, v));
    }
    params.sort_unstable();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
    }
    Ok(())
}

pub(super) fn string_to_sign(date: &[u8], scope: &Scope<'_>, creq: &[u8]) -> Vec<u8> {
    let mut sts = Vec::with_capacity(128 + scope.region.len() + scope.service.len());
    sts.extend_from_slice(ALGORITHM);
    sts.push(b'\n');
    sts.extend_from_slice(date);
    sts.push(b'\n');
    for (i, part) in [scope.date, scope.region, scope.service, TERMINATOR]
        .iter()
        .enumerate()
    {
        if i > 0 {
            sts.push(b'/');
        }
        sts.extend_from_slice(part);
    }
    sts.push(b'\n');
    let mut hex = [0u8; 64];
    crate::hex::encode_into(digest::digest(&digest::SHA256, creq).as_ref(), &mut hex);
    sts.extend_from_slice(&hex);
    sts
}

pub(super) fn signing_key(secret: &str, date: &[u8], region: &[u8], service: &[u8]) -> hmac::Key {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, &k_secret);
    for part in [date, region, service, TERMINATOR] {
        let tag = hmac::sign(&key, part);
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

// ---------------------------------------------------------------------------
// Bytes

/// Every value of header `name` (matched without case), in order.
pub(super) fn header_values<'h>(
    headers: &'h [(&'h [u8], &'h [u8])],
    name: &'h [u8],
) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

/// The query's `name=value` pairs, raw. An empty pair (`a&&b`, a trailing
/// `&`) is an empty name with an empty value, as botocore signs it; an empty
/// query has no pairs.
pub(super) fn query_pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let pairs = (!query.is_empty()).then(|| query.split(|&b| b == b'&'));
    pairs
        .into_iter()
        .flatten()
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, &p[p.len()..]),
        })
}

pub(super) fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| !matches!(b, b' ' | b'\t'));
    let Some(start) = start else { return &[] };
    let end = v
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// Appends `v` trimmed, each inner run of spaces and tabs as one space.
pub(super) fn push_trimmed(v: &[u8], out: &mut Vec<u8>) {
    let mut space = false;
    for &b in trim(v) {
        if matches!(b, b' ' | b'\t') {
            space = true;
        } else {
            if space {
                out.push(b' ');
                space = false;
            }
            out.push(b);
        }
    }
}

pub(super) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// RFC 3986 encoding as SigV4 wants it: unreserved bytes kept, others `%XX` upper case.
pub(super) fn uri_encode(src: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in src {
        if is_unreserved(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is malformed.
/// `+` stays `+` (it is not a space outside HTML forms).
pub(super) fn percent_decode(src: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        if b == b'%' {
            let hi = src.get(i + 1).copied().and_then(crate::hex::digit);
            let lo = src.get(i + 2).copied().and_then(crate::hex::digit);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Failure::Malformed);
            };
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// Does `raw` percent-decode to exactly `want`? (No allocation; a bad escape is no match.)
pub(super) fn decoded_eq(raw: &[u8], want: &[u8]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let Some(&b) = raw.get(i) {
        let byte = if b == b'%' {
            let hi = raw.get(i + 1).copied().and_then(crate::hex::digit);
            let lo = raw.get(i + 2).copied().and_then(crate::hex::digit);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return false;
            };
            i += 3;
            (hi << 4) | lo
        } else {
            i += 1;
            b
        };
        if want.get(j) != Some(&byte) {
            return false;
        }
        j += 1;
    }
    j == want.len()
}

pub(super) fn is_hex(v: &[u8], len: usize) -> bool {
    v.len() == len && v.iter().all(u8::is_ascii_hexdigit)
}
