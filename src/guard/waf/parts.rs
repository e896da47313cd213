//! The request parts a WAF rule can target ([`Target`]) and the splitting of a
//! request into those parts ([`Part`]): query parameters and their names,
//! cookies, and the body's form fields, JSON keys and values or multipart fields.
//! Values borrow from the request where they can (`Cow`) and are decoded only as
//! far as the application would see them (query and form values URL-decoded
//! once, JSON strings unescaped); the rules' transform chains do the rest.
//!
//! Bounds: `max` caps the length of `out`, the list all the functions append to
//! (the caller's per-request total): a function stops once `out.len() >= max`
//! and appends nothing if it is already there. A part's value is at most as
//! long as the bytes it comes from, except a JSON number's text; a JSON key
//! path name is at most [`MAX_NAME`] bytes. Only the JSON walk recurses on the
//! input, as deep as the document nests, which serde_json caps at 128.
//!
//! The JSON walk is hand-written hot-path code: it emits parts as serde_json
//! parses (no document tree) and writes key-path names and numbers into one
//! caller-owned buffer ([`JsonText`]) instead of allocating one per part.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Path,
    Query,
    QueryNames,
    Headers,
    Cookies,
    Body,
}

/// One value to inspect, borrowed from the request or produced by decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub target: Target,
    /// The parameter, header, cookie or form field name, or a JSON key path
    /// (`a.b[0]`); "" for the path and a whole body.
    pub name: Cow<'a, [u8]>,
    pub value: Cow<'a, [u8]>,
}

/// JSON containers nested deeper than this are still walked, but the names of
/// the parts inside stop growing: they carry the path of their ancestor at
/// this depth.
pub const JSON_DEPTH: usize = 32;
/// A JSON key path name is cut to this many bytes.
pub const MAX_NAME: usize = 256;
/// Of a multipart file, this much content is inspected.
pub const FILE_HEAD: usize = 1024;
/// A multipart boundary longer than this (RFC 2046: 70) is not believed.
const MAX_BOUNDARY: usize = 200;

fn push<'a>(out: &mut Vec<Part<'a>>, max: usize, part: Part<'a>) {
    if out.len() < max {
        out.push(part);
    }
}

/// `%XX` → the byte, `+` → space, invalid escapes kept; borrowed when there
/// is nothing to decode.
fn decode_once(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr2(b'%', b'+', s).is_none() {
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
fn form_parts<'a>(
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
            push(
                out,
                max,
                Part {
                    target: value_target,
                    name,
                    value,
                },
            );
        }
        if !name.is_empty() {
            let value = name.clone();
            push(
                out,
                max,
                Part {
                    target: name_target,
                    name,
                    value,
                },
            );
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
            push(
                out,
                max,
                Part {
                    target: Target::Cookies,
                    name: Cow::Borrowed(name),
                    value: Cow::Borrowed(value),
                },
            );
        }
    }
}

/// The body, given its Content-Type header value (or None), as `Target::Body`
/// parts (appending stops at `out.len() == max`):
///
/// - `application/x-www-form-urlencoded`: as [`query_parts`], values and names
///   both as `Body` parts.
/// - `application/json` and `*/*+json`: every object key (name = its key path
///   like `a.b[0].c`, value = the key), every string (unescaped) and every
///   number (as text), in document order; duplicate keys all kept. Past
///   [`JSON_DEPTH`] levels the names stop growing. A body that does not parse
///   gives the whole body as one part, plus each string literal in it that
///   contains an escape, unescaped (name "").
/// - `multipart/form-data` with a `boundary`: each field's value (name = its
///   Content-Disposition `name`); a file field gives its `filename` (and
///   `filename*`) as values and its first [`FILE_HEAD`] bytes as another. The
///   preamble and epilogue are not inspected. A missing closing boundary ends
///   the last field at the end of the body; a body from which no part could be
///   read (no boundary line, headers that never end) is inspected whole.
/// - anything else, or None: the whole body as one part (none if empty).
///
/// `json` (cleared by the caller) holds the text JSON parts borrow.
pub fn body_parts<'a>(
    content_type: Option<&[u8]>,
    body: &'a [u8],
    json: &'a mut JsonText,
    max: usize,
    out: &mut Vec<Part<'a>>,
) {
    if out.len() >= max || body.is_empty() {
        return;
    }
    let ct = content_type.unwrap_or_default();
    let (media, params) = match memchr(b';', ct) {
        Some(p) => (
            ct.get(..p).unwrap_or_default(),
            ct.get(p + 1..).unwrap_or_default(),
        ),
        None => (ct, &b""[..]),
    };
    let media = media.trim_ascii();
    if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        form_parts(body, Target::Body, Target::Body, max, out);
        return;
    }
    if media.eq_ignore_ascii_case(b"application/json") || ends_with_ignore_case(media, b"+json") {
        if !json_parts(body, json, max, out) {
            push(out, max, whole(body));
            escaped_json_strings(body, max, out);
        }
        return;
    }
    if media.eq_ignore_ascii_case(b"multipart/form-data") {
        if let Some(boundary) = boundary(params) {
            if multipart_parts(boundary, body, max, out) {
                return;
            }
        }
    }
    push(out, max, whole(body));
}

fn whole(body: &[u8]) -> Part<'_> {
    Part {
        target: Target::Body,
        name: Cow::Borrowed(b""),
        value: Cow::Borrowed(body),
    }
}

fn ends_with_ignore_case(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len()
        && s.get(s.len() - suffix.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
}

/// The text JSON body parts borrow: their key-path names and their numbers
/// written as text, collected during the walk (so they cost no allocation
/// each) and reused between requests.
#[derive(Debug, Default)]
pub struct JsonText {
    bytes: Vec<u8>,
    /// Per part pushed by the walk: its name's span in `bytes`.
    names: Vec<(usize, usize)>,
    /// Per number: (its part's index among the walk's, its text's span).
    numbers: Vec<(usize, usize, usize)>,
}

impl JsonText {
    /// Forgets the last request's text.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.names.clear();
        self.numbers.clear();
    }
}

/// The walk of a JSON body as serde_json parses it (no document tree): each
/// object key, string and number becomes a part at once, in document order,
/// duplicate keys included (serde_json's `Value` keeps only the last of
/// duplicate keys, which an attacker could use to hide the first from the scan
/// while a first-wins application reads it). Strings borrow from the body when
/// they hold no escape; names and numbers are written to `text`, and
/// [`json_parts`] points the parts at it once the walk is over. Recursion
/// follows the document's nesting, which serde_json caps at 128.
struct JsonWalk<'o, 'a> {
    out: &'o mut Vec<Part<'a>>,
    /// `out.len()` before the walk.
    first: usize,
    max: usize,
    text: &'o mut JsonText,
    /// The key path of the current value.
    path: Vec<u8>,
    /// Containers around the current value.
    depth: usize,
}

impl<'a> JsonWalk<'_, 'a> {
    fn push(&mut self, value: Cow<'a, [u8]>) {
        if self.out.len() >= self.max {
            return;
        }
        let start = self.text.bytes.len();
        self.text.bytes.extend_from_slice(&self.path);
        self.text.names.push((start, self.text.bytes.len()));
        self.out.push(Part {
            target: Target::Body,
            name: Cow::Borrowed(b""),
            value,
        });
    }

    /// A number's text: written to `text` and pointed at after the walk.
    fn push_number(&mut self, number: &[u8]) {
        if self.out.len() >= self.max {
            return;
        }
        let start = self.text.bytes.len();
        self.text.bytes.extend_from_slice(number);
        let part = self.out.len() - self.first;
        self.text.numbers.push((part, start, self.text.bytes.len()));
        self.push(Cow::Borrowed(b""));
    }

    /// Sets the path to a container's child: `base` is the container's own path
    /// length; past [`JSON_DEPTH`] containers the path stops growing.
    fn child_path(&mut self, base: usize, child: impl FnOnce(&mut Vec<u8>)) {
        self.path.truncate(base);
        if self.depth <= JSON_DEPTH {
            child(&mut self.path);
            self.path.truncate(MAX_NAME);
        }
    }
}

/// A JSON value to walk.
struct JsonNode<'w, 'o, 'a>(&'w mut JsonWalk<'o, 'a>);

impl<'de> DeserializeSeed<'de> for JsonNode<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonNode<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push_number(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push_number(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // serde_json's (shortest round-trip) formatting: `1e300`, not 301 digits.
        if let Some(n) = serde_json::Number::from_f64(v) {
            let mut text = [0u8; 32];
            let mut w = &mut text[..];
            if std::io::Write::write_fmt(&mut w, format_args!("{n}")).is_ok() {
                let len = 32 - w.len();
                self.0.push_number(text.get(..len).unwrap_or_default());
            }
        }
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.0.push(Cow::Borrowed(v.as_bytes()));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(Cow::Owned(v.as_bytes().to_vec()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.0.push(Cow::Owned(v.into_bytes()));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.0;
        let base = walk.path.len();
        walk.depth += 1;
        let mut index = 0usize;
        loop {
            walk.child_path(base, |path| {
                path.push(b'[');
                path.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
                path.push(b']');
            });
            if seq.next_element_seed(JsonNode(walk))?.is_none() {
                break;
            }
            index += 1;
        }
        walk.depth -= 1;
        walk.path.truncate(base);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.0;
        let base = walk.path.len();
        walk.depth += 1;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            walk.child_path(base, |path| {
                if !path.is_empty() {
                    path.push(b'.');
                }
                path.extend_from_slice(&key);
            });
            walk.push(key);
            map.next_value_seed(JsonNode(walk))?;
        }
        walk.depth -= 1;
        walk.path.truncate(base);
        Ok(())
    }
}

/// An object key, borrowed when it holds no escape.
struct Key<'a>(Cow<'a, [u8]>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v.as_bytes())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.as_bytes().to_vec())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.into_bytes())))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

/// The parts of a JSON `body` (see [`body_parts`]), their names and numbers in
/// `text`; false, with nothing appended, when the body is not JSON.
fn json_parts<'a>(
    body: &'a [u8],
    text: &'a mut JsonText,
    max: usize,
    out: &mut Vec<Part<'a>>,
) -> bool {
    let first = out.len();
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut walk = JsonWalk {
        out,
        first,
        max,
        text: &mut *text,
        path: Vec::new(),
        depth: 0,
    };
    let parsed = JsonNode(&mut walk)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if parsed.is_err() {
        out.truncate(first);
        return false;
    }
    let text: &'a JsonText = text;
    let walked = out.get_mut(first..).unwrap_or_default();
    for (part, &(start, end)) in walked.iter_mut().zip(&text.names) {
        part.name = Cow::Borrowed(text.bytes.get(start..end).unwrap_or_default());
    }
    for &(part, start, end) in &text.numbers {
        if let Some(p) = walked.get_mut(part) {
            p.value = Cow::Borrowed(text.bytes.get(start..end).unwrap_or_default());
        }
    }
    true
}

/// For a body that is not valid JSON: each `"…"` literal containing a
/// backslash escape, unescaped by serde_json (literals it refuses are skipped),
/// so `\u0027` tricks are seen even when the document is broken on purpose.
fn escaped_json_strings<'a>(body: &'a [u8], max: usize, out: &mut Vec<Part<'a>>) {
    let mut i = 0;
    while out.len() < max {
        let Some(q) = body.get(i..).and_then(|rest| memchr(b'"', rest)) else {
            return;
        };
        let start = i + q;
        let mut j = start + 1;
        let mut escaped = false;
        // Find the closing quote, stepping over escapes.
        loop {
            let Some(p) = body.get(j..).and_then(|rest| memchr2(b'"', b'\\', rest)) else {
                return;
            };
            if body.get(j + p) == Some(&b'\\') {
                escaped = true;
                j += p + 2;
            } else {
                j += p;
                break;
            }
        }
        if escaped {
            if let Some(Ok(s)) = body.get(start..=j).map(serde_json::from_slice::<String>) {
                push(
                    out,
                    max,
                    Part {
                        target: Target::Body,
                        name: Cow::Borrowed(b""),
                        value: Cow::Owned(s.into_bytes()),
                    },
                );
            }
        }
        i = j + 1;
    }
}

/// The `boundary` parameter of a Content-Type's parameters (after the first `;`).
fn boundary(params: &[u8]) -> Option<&[u8]> {
    params.split(|&b| b == b';').find_map(|param| {
        let param = param.trim_ascii();
        let eq = memchr(b'=', param)?;
        let key = param.get(..eq)?.trim_ascii();
        if !key.eq_ignore_ascii_case(b"boundary") {
            return None;
        }
        let value = param.get(eq + 1..)?.trim_ascii();
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        };
        (!value.is_empty() && value.len() <= MAX_BOUNDARY).then_some(value)
    })
}

/// The Content-Disposition `name` and up to two `filename`/`filename*` values.
/// Quoted values are taken raw (backslash escapes not undone).
fn disposition(v: &[u8]) -> (&[u8], [Option<&[u8]>; 2]) {
    let mut name: &[u8] = b"";
    let mut files: [Option<&[u8]>; 2] = [None, None];
    // Skip the disposition type (`form-data`).
    let mut i = match memchr(b';', v) {
        Some(p) => p + 1,
        None => return (name, files),
    };
    while i < v.len() {
        while matches!(v.get(i), Some(b' ' | b'\t' | b';')) {
            i += 1;
        }
        let key_start = i;
        while !matches!(v.get(i), None | Some(b'=' | b';')) {
            i += 1;
        }
        let key = v.get(key_start..i).unwrap_or_default().trim_ascii();
        if v.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while matches!(v.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let value = if v.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            while !matches!(v.get(i), None | Some(b'"')) {
                i += if v.get(i) == Some(&b'\\') { 2 } else { 1 };
            }
            let value = v.get(start..i.min(v.len())).unwrap_or_default();
            i += 1;
            value
        } else {
            let start = i;
            while !matches!(v.get(i), None | Some(b';')) {
                i += 1;
            }
            v.get(start..i).unwrap_or_default().trim_ascii()
        };
        if key.eq_ignore_ascii_case(b"name") {
            if name.is_empty() {
                name = value;
            }
        } else if key.eq_ignore_ascii_case(b"filename") || key.eq_ignore_ascii_case(b"filename*") {
            if let Some(slot) = files.iter_mut().find(|f| f.is_none()) {
                *slot = Some(value);
            }
        }
    }
    (name, files)
}

/// Splits a multipart body on `--boundary` lines; whether it gave any part (if
/// not — no boundary line, or nothing readable — the caller inspects the body
/// whole).
fn multipart_parts<'a>(
    boundary: &[u8],
    body: &'a [u8],
    max: usize,
    out: &mut Vec<Part<'a>>,
) -> bool {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delim);
    // The next delimiter at the start of a line, at or after `from`.
    let find = |from: usize| -> Option<usize> {
        let mut at = from;
        loop {
            let p = at + finder.find(body.get(at..)?)?;
            if p == 0 || body.get(p - 1) == Some(&b'\n') {
                return Some(p);
            }
            at = p + 1;
        }
    };
    let Some(mut d) = find(0) else {
        return false;
    };
    let before = out.len();
    while out.len() < max {
        let after = d + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            break; // the closing delimiter
        }
        // The rest of the delimiter line (transport padding) and the headers.
        let Some(nl) = body.get(after..).and_then(|rest| memchr(b'\n', rest)) else {
            break;
        };
        let mut pos = after + nl + 1;
        let mut name: &[u8] = b"";
        let mut files = [None, None];
        loop {
            let rest = body.get(pos..).unwrap_or_default();
            let (line, next) = match memchr(b'\n', rest) {
                Some(p) => (rest.get(..p).unwrap_or_default(), pos + p + 1),
                None => (rest, body.len()),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            pos = next;
            if line.is_empty() || pos >= body.len() {
                break;
            }
            const CD: &[u8] = b"content-disposition:";
            if line
                .get(..CD.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(CD))
            {
                (name, files) = disposition(line.get(CD.len()..).unwrap_or_default());
            }
        }
        let next = find(pos);
        let mut end = next.unwrap_or(body.len()).max(pos);
        // The line break before a delimiter belongs to it.
        if next.is_some() {
            if end > pos && body.get(end - 1) == Some(&b'\n') {
                end -= 1;
            }
            if end > pos && body.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
        }
        let content = body.get(pos..end).unwrap_or_default();
        let field = |value: &'a [u8]| Part {
            target: Target::Body,
            name: Cow::Borrowed(name),
            value: Cow::Borrowed(value),
        };
        if files.iter().any(Option::is_some) {
            for file in files.into_iter().flatten().filter(|f| !f.is_empty()) {
                push(out, max, field(file));
            }
            let head = content
                .get(..content.len().min(FILE_HEAD))
                .unwrap_or_default();
            if !head.is_empty() {
                push(out, max, field(head));
            }
        } else if !content.is_empty() {
            push(out, max, field(content));
        }
        match next {
            Some(p) => d = p,
            None => break,
        }
    }
    out.len() > before
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn show(parts: &[Part<'_>]) -> Vec<(Target, String, String)> {
        parts
            .iter()
            .map(|p| {
                (
                    p.target,
                    String::from_utf8_lossy(&p.name).into_owned(),
                    String::from_utf8_lossy(&p.value).into_owned(),
                )
            })
            .collect()
    }

    fn t(target: Target, name: &str, value: &str) -> (Target, String, String) {
        (target, name.to_owned(), value.to_owned())
    }

    fn query(q: &str) -> Vec<(Target, String, String)> {
        let mut out = Vec::new();
        query_parts(q.as_bytes(), 100, &mut out);
        show(&out)
    }

    fn body(ct: Option<&str>, b: &[u8]) -> Vec<(Target, String, String)> {
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(ct.map(str::as_bytes), b, &mut names, 100, &mut out);
        show(&out)
    }

    use Target::{Body, Cookies, Query, QueryNames};

    #[test]
    fn query_pairs_repeated_and_encoded() {
        assert_eq!(
            query("id=1&id=2+OR+1%3D1&%3Cname%3E=x"),
            vec![
                t(Query, "id", "1"),
                t(QueryNames, "id", "id"),
                t(Query, "id", "2 OR 1=1"),
                t(QueryNames, "id", "id"),
                t(Query, "<name>", "x"),
                t(QueryNames, "<name>", "<name>"),
            ]
        );
    }

    #[test]
    fn query_decodes_once_and_skips_empty() {
        // Decoded once only: the transforms undo the rest.
        assert_eq!(
            query("a=%2527&&b=&=&%zz=%"),
            vec![
                t(Query, "a", "%27"),
                t(QueryNames, "a", "a"),
                t(QueryNames, "b", "b"),
                t(Query, "%zz", "%"),
                t(QueryNames, "%zz", "%zz"),
            ]
        );
        // A bare word is both name and value; `=` only at the first one.
        assert_eq!(
            query("%3Cscript%3E&x=a=b"),
            vec![
                t(Query, "<script>", "<script>"),
                t(QueryNames, "<script>", "<script>"),
                t(Query, "x", "a=b"),
                t(QueryNames, "x", "x"),
            ]
        );
        assert!(query("").is_empty());
        assert!(query("&&&").is_empty());
    }

    #[test]
    fn query_borrows_when_nothing_to_decode() {
        let mut out = Vec::new();
        query_parts(b"a=b", 10, &mut out);
        assert!(matches!(out[0].value, Cow::Borrowed(b"b")));
        assert!(matches!(out[0].name, Cow::Borrowed(b"a")));
    }

    #[test]
    fn max_caps_the_list() {
        let mut names = JsonText::default();
        let mut out = Vec::new();
        query_parts(b"a=1&b=2&c=3", 3, &mut out);
        assert_eq!(out.len(), 3);
        // Already full: nothing appended.
        cookie_parts(b"x=1", 3, &mut out);
        body_parts(None, b"body", &mut names, 3, &mut out);
        assert_eq!(out.len(), 3);
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(
            Some(b"application/json"),
            br#"{"a":[1,2,3,4,5]}"#,
            &mut names,
            4,
            &mut out,
        );
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn cookies_spaces_and_quotes() {
        let mut out = Vec::new();
        cookie_parts(
            b"session=abc;  theme = dark ;q=\"' OR 1=1\";;flag;empty=;\"=\"",
            100,
            &mut out,
        );
        assert_eq!(
            show(&out),
            vec![
                t(Cookies, "session", "abc"),
                t(Cookies, "theme", "dark"),
                t(Cookies, "q", "' OR 1=1"),
                t(Cookies, "", "flag"),
                t(Cookies, "\"", "\""),
            ]
        );
        // Values are not URL-decoded.
        let mut out = Vec::new();
        cookie_parts(b"a=%27", 100, &mut out);
        assert_eq!(show(&out), vec![t(Cookies, "a", "%27")]);
    }

    #[test]
    fn form_body_like_query() {
        assert_eq!(
            body(
                Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
                b"user=bob&pw=x%27+or+1%3D1"
            ),
            vec![
                t(Body, "user", "bob"),
                t(Body, "user", "user"),
                t(Body, "pw", "x' or 1=1"),
                t(Body, "pw", "pw"),
            ]
        );
    }

    #[test]
    fn json_nested_objects_arrays() {
        let b = br#"{"a":{"b":[1,"two",{"c":null,"d":true,"e":-2.5e3}]},"k":"v"}"#;
        assert_eq!(
            body(Some("application/json"), b),
            vec![
                t(Body, "a", "a"),
                t(Body, "a.b", "b"),
                t(Body, "a.b[0]", "1"),
                t(Body, "a.b[1]", "two"),
                t(Body, "a.b[2].c", "c"),
                t(Body, "a.b[2].d", "d"),
                t(Body, "a.b[2].e", "e"),
                t(Body, "a.b[2].e", "-2500.0"),
                t(Body, "k", "k"),
                t(Body, "k", "v"),
            ]
        );
        assert_eq!(
            body(Some("application/vnd.api+json"), br#"[["x"]]"#),
            vec![t(Body, "[0][0]", "x")]
        );
        assert_eq!(
            body(Some("application/json"), br#""top""#),
            vec![t(Body, "", "top")]
        );
        assert_eq!(
            body(Some("application/json"), b"1e300"),
            vec![t(Body, "", "1e+300")]
        );
    }

    #[test]
    fn json_escapes_and_duplicates() {
        let b = br#"{"q":"\u0027 OR 1=1","\u003cs\u003e":"a\"b","q":"second"}"#;
        assert_eq!(
            body(Some("application/json; charset=utf-8"), b),
            vec![
                t(Body, "q", "q"),
                t(Body, "q", "' OR 1=1"),
                t(Body, "<s>", "<s>"),
                t(Body, "<s>", "a\"b"),
                t(Body, "q", "q"),
                t(Body, "q", "second"),
            ]
        );
        // Unescaped strings borrow from the body.
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(
            Some(b"application/json"),
            br#"{"a":"b"}"#,
            &mut names,
            10,
            &mut out,
        );
        assert!(out.iter().all(|p| matches!(p.value, Cow::Borrowed(_))));
    }

    #[test]
    fn json_invalid_falls_back() {
        // Trailing comma: not JSON; whole body, plus the escaped literal decoded.
        let b = br#"{"q":"\u0027 OR 1=1", "r":"plain",}"#;
        assert_eq!(
            body(Some("application/json"), b),
            vec![
                t(Body, "", std::str::from_utf8(b).unwrap()),
                t(Body, "", "' OR 1=1"),
            ]
        );
        assert_eq!(
            body(Some("application/json"), b"not json \"\\x\""),
            vec![t(Body, "", "not json \"\\x\"")]
        );
    }

    #[test]
    fn json_depth_bomb_falls_back() {
        let mut b = vec![b'['; 10_000];
        b.extend_from_slice(b"\"' OR 1=1\"");
        b.extend(std::iter::repeat_n(b']', 10_000));
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(Some(b"application/json"), &b, &mut names, 100, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value.len(), b.len());
        // Unbalanced, and objects.
        let b = "{\"a\":".repeat(10_000);
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(
            Some(b"application/json"),
            b.as_bytes(),
            &mut names,
            100,
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn json_deeper_than_depth_limit_still_inspected() {
        // 100 levels: serde_json accepts it (limit 128); names stop at 32 levels.
        let b = format!("{}\"deep\"{}", "[".repeat(100), "]".repeat(100));
        let parts = body(Some("application/json"), b.as_bytes());
        assert_eq!(parts, vec![t(Body, &"[0]".repeat(JSON_DEPTH), "deep")]);
        // Key paths are cut at MAX_NAME bytes.
        let key = "k".repeat(1000);
        let b = format!("{{\"{key}\":{{\"x\":[\"v\",\"w\"]}}}}");
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(
            Some(b"application/json"),
            b.as_bytes(),
            &mut names,
            100,
            &mut out,
        );
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|p| p.name.len() <= MAX_NAME));
        assert_eq!(&out[3].value[..], b"w");
    }

    const MULTIPART: &[u8] = b"preamble\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"user\"\r\n\
\r\n\
bob\r\n\
--XyZ\r\n\
content-disposition: form-data; name=\"q\"\r\n\
\r\n\
1' UNION SELECT\r\npassword\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"up\"; filename=\"shell.php\"\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
<?php system($_GET['c']); ?>\r\n\
--XyZ--\r\n\
epilogue";

    #[test]
    fn multipart_fields_and_file() {
        assert_eq!(
            body(Some("multipart/form-data; boundary=XyZ"), MULTIPART),
            vec![
                t(Body, "user", "bob"),
                t(Body, "q", "1' UNION SELECT\r\npassword"),
                t(Body, "up", "shell.php"),
                t(Body, "up", "<?php system($_GET['c']); ?>"),
            ]
        );
        // Quoted boundary, LF line ends.
        let lf = b"--b\nContent-Disposition: form-data; name=a\n\nv\n--b--\n";
        assert_eq!(
            body(Some("multipart/form-data; charset=x; Boundary=\"b\""), lf),
            vec![t(Body, "a", "v")]
        );
    }

    #[test]
    fn multipart_file_head_only() {
        let mut b = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename*=UTF-8''a.php\r\n\r\n".to_vec();
        b.extend(std::iter::repeat_n(b'x', 5000));
        b.extend_from_slice(b"\r\n--b--");
        let parts = body(Some("multipart/form-data; boundary=b"), &b);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].2, "a.txt");
        assert_eq!(parts[1].2, "UTF-8''a.php");
        assert_eq!(parts[2].2.len(), FILE_HEAD);
    }

    #[test]
    fn multipart_malformed_best_effort() {
        // No closing boundary: the last field runs to the end.
        let b = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n' OR 1=1";
        assert_eq!(
            body(Some("multipart/form-data; boundary=b"), b),
            vec![t(Body, "a", "1"), t(Body, "c", "' OR 1=1")]
        );
        // Headers never end: nothing readable, so the whole body.
        let b = b"--b\r\nContent-Disposition: form-data; name=\"' OR 1=1";
        let whole = String::from_utf8_lossy(b).into_owned();
        assert_eq!(
            body(Some("multipart/form-data; boundary=b"), b),
            vec![t(Body, "", &whole)]
        );
        // No boundary line at all, or no boundary parameter: the whole body.
        assert_eq!(
            body(Some("multipart/form-data; boundary=zz"), b"x--zz"),
            vec![t(Body, "", "x--zz")]
        );
        assert_eq!(
            body(Some("multipart/form-data"), b"--b\r\n"),
            vec![t(Body, "", "--b\r\n")]
        );
        // Unterminated quotes in Content-Disposition.
        let b = b"--b\r\nContent-Disposition: form-data; name=\"a\\\r\n\r\nv";
        assert_eq!(
            body(Some("multipart/form-data; boundary=b"), b),
            vec![t(Body, "a\\", "v")]
        );
    }

    #[test]
    fn other_types_whole_body() {
        assert_eq!(
            body(Some("text/plain"), b"<script>"),
            vec![t(Body, "", "<script>")]
        );
        assert_eq!(body(None, b"x=1"), vec![t(Body, "", "x=1")]);
        assert_eq!(
            body(Some("application/xml"), b"<a/>"),
            vec![t(Body, "", "<a/>")]
        );
        assert!(body(Some("application/json"), b"").is_empty());
    }

    fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            proptest::sample::select(vec![
                &b"application/json"[..],
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=b",
                b"multipart/form-data; boundary=\"\"",
                b"multipart/form-data; boundary=",
                b"text/plain",
                b";",
                b"",
            ])
            .prop_map(|s| Some(s.to_vec())),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        ]
    }

    /// Bytes biased towards the syntax the splitters look for.
    fn syntax_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            proptest::sample::select(vec![
                &b"--b"[..],
                b"--b--",
                b"\r\n",
                b"\n",
                b"Content-Disposition: form-data; name=\"",
                b"; filename=\"",
                b"\"",
                b"\\",
                b";",
                b"=",
                b"&",
                b"%",
                b"%2",
                b"+",
                b"{",
                b"}",
                b"[",
                b"]",
                b":",
                b",",
                b"\"k\"",
                b"\\u0027",
                b"1",
                b"-1.5e3",
                b"null",
                b" ",
            ])
            .prop_map(|t| t.to_vec()),
        ];
        proptest::collection::vec(token, 0..80).prop_map(|v| v.concat())
    }

    fn any_body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            syntax_bytes()
        ]
    }

    proptest! {
        #[test]
        fn query_never_panics_or_exceeds_max(q in any_body(), max in 0usize..20, pre in 0usize..5) {
            let mut out = vec![whole(b"pre"); pre];
            query_parts(&q, max, &mut out);
            prop_assert!(out.len() <= max.max(pre));
        }

        #[test]
        fn cookies_never_panic_or_exceed_max(c in any_body(), max in 0usize..20) {
            let mut out = Vec::new();
            cookie_parts(&c, max, &mut out);
            prop_assert!(out.len() <= max);
        }

        #[test]
        fn body_never_panics_or_exceeds_max(ct in content_type(), b in any_body(), max in 0usize..20, pre in 0usize..5) {
            let mut names = JsonText::default();
            let mut out = vec![whole(b"pre"); pre];
            body_parts(ct.as_deref(), &b, &mut names, max, &mut out);
            prop_assert!(out.len() <= max.max(pre));
            for p in &out[pre.min(out.len())..] {
                prop_assert!(p.name.len() <= MAX_NAME.max(b.len()));
                prop_assert!(p.value.len() <= b.len() + 32);
            }
        }
    }
}
