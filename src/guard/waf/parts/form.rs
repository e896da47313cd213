//! `name=value&…` pairs: the query string, form bodies and the `Cookie` header.

use super::*;

/// `%XX` → the byte, `+` → space, invalid escapes kept; borrowed when there
/// is nothing to decode.
pub(in crate::guard::waf) fn decode_once(s: &[u8]) -> Cow<'_, [u8]> {
    // Most names and values are a few bytes, where a plain loop beats
    // memchr's set-up.
    let encoded = if s.len() < 32 {
        s.iter().any(|&b| b == b'%' || b == b'+')
    } else {
        memchr2(b'%', b'+', s).is_some()
    };
    if !encoded {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = s.get(i + 1).and_then(|&c| hex(c));
                let lo = s.get(i + 2).and_then(|&c| hex(c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// `name=value&…` pairs: a `value_target` part per pair with a non-empty value
/// and a `name_target` part per non-empty name. A pair without `=` is a bare
/// word that an application reading the raw string sees as data: it is both
/// the name and the value.
pub(super) fn form_parts<'a>(
    data: &'a [u8],
    value_target: Target,
    name_target: Target,
    max: usize,
    out: &mut Vec<Part<'a>>,
) {
    for pair in data.split(|&b| b == b'&') {
        if out.len() >= max {
            return;
        }
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match memchr(b'=', pair) {
            Some(p) => {
                let name = decode_once(pair.get(..p).unwrap_or_default());
                (name, decode_once(pair.get(p + 1..).unwrap_or_default()))
            }
            None => {
                let name = decode_once(pair);
                (name.clone(), name)
            }
        };
        if !value.is_empty() {
            let name = name.clone();
            push_with(out, max, || Part {
                target: value_target,
                name,
                value,
            });
        }
        if !name.is_empty() {
            let value = name.clone();
            push_with(out, max, || Part {
                target: name_target,
                name,
                value,
            });
        }
    }
}

/// Splits a query string (without `?`) on `&`: for each pair a
/// `Part{Query, name, value}` (value URL-decoded once, `+` → space; pairs with
/// an empty value have none) and a `Part{QueryNames, name, name}` (the name
/// decoded the same way; none for an empty name). A pair without `=` gives its
/// text as both name and value. Empty pairs are skipped; appending stops at
/// `out.len() == max`.
pub fn query_parts<'a>(query: &'a [u8], max: usize, out: &mut Vec<Part<'a>>) {
    form_parts(query, Target::Query, Target::QueryNames, max, out);
}

/// A Cookie header value → `Part{Cookies, name, value}` for each `name=value`
/// (`;` separated, spaces and tabs around names and values trimmed, one pair
/// of surrounding double quotes removed from a value; a pair without `=` is a
/// value with the name ""; empty values skipped). Values are not URL-decoded.
/// Appending stops at `out.len() == max`.
pub fn cookie_parts<'a>(cookie: &'a [u8], max: usize, out: &mut Vec<Part<'a>>) {
    for pair in cookie.split(|&b| b == b';') {
        if out.len() >= max {
            return;
        }
        let pair = pair.trim_ascii();
        let (name, value) = match memchr(b'=', pair) {
            Some(p) => (
                pair.get(..p).unwrap_or_default().trim_ascii(),
                pair.get(p + 1..).unwrap_or_default().trim_ascii(),
            ),
            None => (&b""[..], pair),
        };
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        };
        if !value.is_empty() {
            push_with(out, max, || Part {
                target: Target::Cookies,
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(value),
            });
        }
    }
}
