//! Parsing the two signed forms: the `Authorization` header and the presigned URL.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Detected {
    None,
    Header,
    Query,
    /// Both forms, or a second Authorization header beside a SigV4 one.
    Ambiguous,
}

pub(super) fn detect(req: &SignedRequest<'_>) -> Detected {
    let mut authorizations = 0usize;
    let mut sigv4_header = false;
    for v in header_values(req.headers, b"authorization") {
        authorizations += 1;
        sigv4_header |= trim(v).starts_with(ALGORITHM);
    }
    let presigned = query_pairs(req.query).any(|(name, _)| decoded_eq(name, b"X-Amz-Algorithm"));
    match (sigv4_header, presigned) {
        (true, false) if authorizations == 1 => Detected::Header,
        (true, _) => Detected::Ambiguous,
        (false, true) if authorizations == 0 => Detected::Query,
        (false, true) => Detected::Ambiguous,
        (false, false) => Detected::None,
    }
}

/// The signing parameters of either form.
pub(super) struct Auth {
    /// `AKID/YYYYMMDD/region/service/aws4_request`, decoded.
    pub(super) credential: Vec<u8>,
    /// `host;x-amz-date`, validated: lower-case tokens, strictly sorted, host among them.
    pub(super) signed_headers: Vec<u8>,
    pub(super) signature: [u8; 32],
    /// `YYYYMMDDTHHMMSSZ`, validated.
    pub(super) date: Vec<u8>,
    pub(super) unix: i64,
    /// Presigned: X-Amz-Expires.
    pub(super) expires: Option<u64>,
}

/// The credential's five parts.
pub(super) struct Scope<'a> {
    pub(super) key_id: &'a [u8],
    pub(super) date: &'a [u8],
    pub(super) region: &'a [u8],
    pub(super) service: &'a [u8],
    pub(super) terminator: &'a [u8],
}

impl Auth {
    pub(super) fn scope(&self) -> Result<Scope<'_>, Failure> {
        let mut parts = self.credential.split(|&b| b == b'/');
        let mut next = || parts.next().ok_or(Failure::Malformed);
        let scope = Scope {
            key_id: next()?,
            date: next()?,
            region: next()?,
            service: next()?,
            terminator: next()?,
        };
        if parts.next().is_some() || scope.key_id.is_empty() || scope.key_id.len() > MAX_KEY_ID_LEN
        {
            return Err(Failure::Malformed);
        }
        Ok(scope)
    }

    pub(super) fn signed_names(&self) -> impl Iterator<Item = &[u8]> {
        self.signed_headers.split(|&b| b == b';')
    }
}

pub(super) fn parse_header_form(req: &SignedRequest<'_>) -> Result<Auth, Failure> {
    let value = header_values(req.headers, b"authorization")
        .next()
        .ok_or(Failure::Missing)?;
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(Failure::Malformed);
    }
    let rest = trim(value)
        .strip_prefix(ALGORITHM)
        .ok_or(Failure::Missing)?;
    if !matches!(rest.first(), Some(b' ' | b'\t')) {
        return Err(Failure::Malformed);
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest
        .split(|&b| matches!(b, b' ' | b'\t' | b','))
        .filter(|p| !p.is_empty())
    {
        let eq = part
            .iter()
            .position(|&b| b == b'=')
            .ok_or(Failure::Malformed)?;
        let (name, value) = (&part[..eq], &part[eq + 1..]);
        let slot = match name {
            b"Credential" => &mut credential,
            b"SignedHeaders" => &mut signed_headers,
            b"Signature" => &mut signature,
            _ => return Err(Failure::Malformed),
        };
        if slot.replace(value).is_some() {
            return Err(Failure::Malformed);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(Failure::Malformed);
    };
    validate_signed_headers(signed_headers, true)?;

    let mut dates = header_values(req.headers, b"x-amz-date");
    let date = match (dates.next(), dates.next()) {
        (Some(d), None) => trim(d),
        // No x-amz-date (a `Date` header alone is not supported), or two.
        _ => return Err(Failure::Malformed),
    };
    let unix = parse_amz_date(date).ok_or(Failure::Malformed)?;
    Ok(Auth {
        credential: credential.to_vec(),
        signed_headers: signed_headers.to_vec(),
        signature: parse_signature(signature)?,
        date: date.to_vec(),
        unix,
        expires: None,
    })
}

pub(super) fn parse_query_form(query: &[u8]) -> Result<Auth, Failure> {
    let (mut algorithm, mut credential, mut date, mut expires, mut signed_headers, mut signature) =
        (None, None, None, None, None, None);
    for (name, value) in query_pairs(query) {
        let slot = if decoded_eq(name, b"X-Amz-Algorithm") {
            &mut algorithm
        } else if decoded_eq(name, b"X-Amz-Credential") {
            &mut credential
        } else if decoded_eq(name, b"X-Amz-Date") {
            &mut date
        } else if decoded_eq(name, b"X-Amz-Expires") {
            &mut expires
        } else if decoded_eq(name, b"X-Amz-SignedHeaders") {
            &mut signed_headers
        } else if decoded_eq(name, b"X-Amz-Signature") {
            &mut signature
        } else {
            continue;
        };
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(Failure::Malformed);
        }
        if slot.replace(percent_decode(value)?).is_some() {
            return Err(Failure::Malformed);
        }
    }
    let (
        Some(algorithm),
        Some(credential),
        Some(date),
        Some(expires),
        Some(signed_headers),
        Some(signature),
    ) = (
        algorithm,
        credential,
        date,
        expires,
        signed_headers,
        signature,
    )
    else {
        return Err(Failure::Malformed);
    };
    if algorithm != ALGORITHM {
        return Err(Failure::Malformed);
    }
    validate_signed_headers(&signed_headers, false)?;
    let unix = parse_amz_date(&date).ok_or(Failure::Malformed)?;
    let expires = parse_expires(&expires).ok_or(Failure::Malformed)?;
    Ok(Auth {
        credential,
        signed_headers,
        signature: parse_signature(&signature)?,
        date,
        unix,
        expires: Some(expires),
    })
}

/// `SignedHeaders`: 1 to 64 lower-case header names, strictly ascending (as
/// every SDK sends them), `host` among them, and `x-amz-date` too in the header
/// form (the date must be signed).
pub(super) fn validate_signed_headers(list: &[u8], header_form: bool) -> Result<(), Failure> {
    let (mut count, mut host, mut amz_date) = (0usize, false, false);
    let mut previous: &[u8] = &[];
    for name in list.split(|&b| b == b';') {
        count += 1;
        if count > MAX_SIGNED_HEADERS
            || name.is_empty()
            || !name.iter().all(|&b| is_lower_token(b))
            || (count > 1 && name <= previous)
        {
            return Err(Failure::Malformed);
        }
        host |= name == b"host";
        amz_date |= name == b"x-amz-date";
        previous = name;
    }
    if !host || (header_form && !amz_date) {
        return Err(Failure::Malformed);
    }
    Ok(())
}

/// A header-name character (RFC 9110 tchar), upper case excluded.
pub(super) fn is_lower_token(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

pub(super) fn parse_signature(hex: &[u8]) -> Result<[u8; 32], Failure> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err(Failure::Malformed);
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (crate::hex::digit(pair[0]), crate::hex::digit(pair[1])) else {
            return Err(Failure::Malformed);
        };
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

/// X-Amz-Expires: decimal seconds, at most 7 days.
pub(super) fn parse_expires(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 7 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s
        .iter()
        .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
    (v <= MAX_PRESIGNED_EXPIRES).then_some(v)
}

/// `YYYYMMDDTHHMMSSZ` → Unix seconds; None unless a real UTC date and time.
pub(super) fn parse_amz_date(s: &[u8]) -> Option<i64> {
    if s.len() != 16 || s.get(8) != Some(&b'T') || s.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        s.get(from..to)?.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
    let (hour, minute, second) = (num(9, 11)?, num(11, 13)?, num(13, 15)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

// ---------------------------------------------------------------------------
