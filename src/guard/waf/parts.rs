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
//! path name is at most [`MAX_NAME`] bytes. Nothing recurses on the input: the
//! JSON walk keeps its open containers on a fixed stack, as deep as serde_json
//! allows (127).
//!
//! The JSON walk ([`JsonScan`]) is hand-written hot-path code: serde_json's
//! parser behind a visitor cost about as much as scanning the parts, so the
//! grammar is walked here, in one pass, without recursion or a document tree;
//! it accepts exactly what serde_json parses into values (property tests hold
//! it to that), leaves the rare tokens that take real decoding (escaped strings,
//! numbers serde_json writes otherwise than sent) to serde_json, and writes
//! key-path names (only when asked: [`json_part_names`]) and rewritten numbers
//! into one caller-owned buffer ([`JsonText`]) instead of allocating one per
//! part.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};

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
    /// The parameter, header, cookie or form field name; "" for the path, a
    /// whole body and JSON parts (whose key path [`json_part_names`] gives).
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

/// `parts` emptied, as a list for parts of another lifetime: the same
/// allocation (a map to a type of the same layout is collected in place), so a
/// core's parts list is allocated once, not per request.
pub fn recycle<'b>(mut parts: Vec<Part<'_>>) -> Vec<Part<'b>> {
    parts.clear();
    parts.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// Appends `part()` if `out` is shorter than `max`. The part is built once
/// there is room for it and written straight into the vector: built first and
/// then moved (as `Vec::push` takes it, across its call to grow), its fields
/// went through the stack in 8-byte stores and were reloaded in 16-byte
/// loads, a store-forwarding stall per part (perf).
#[inline(always)]
pub(super) fn push_with<'a>(out: &mut Vec<Part<'a>>, max: usize, part: impl FnOnce() -> Part<'a>) {
    if out.len() >= max {
        return;
    }
    if out.len() == out.capacity() {
        out.reserve(16);
    }
    if let Some(slot) = out.spare_capacity_mut().first_mut() {
        slot.write(part());
        // SAFETY: the element at `len` (within capacity) was just initialized.
        unsafe { out.set_len(out.len() + 1) }
    }
}

/// `%XX` → the byte, `+` → space, invalid escapes kept; borrowed when there
/// is nothing to decode.
fn decode_once(s: &[u8]) -> Cow<'_, [u8]> {
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

/// The body, given its Content-Type header value (or None), as `Target::Body`
/// parts (appending stops at `out.len() == max`):
///
/// - `application/x-www-form-urlencoded`: as [`query_parts`], values and names
///   both as `Body` parts.
/// - `application/json` and `*/*+json`: every object key (value = the key),
///   every string (unescaped) and every number (as text), in document order;
///   duplicate keys all kept. Names are left empty: [`json_part_names`] gives a
///   part's key path (like `a.b[0].c`; past [`JSON_DEPTH`] levels the names
///   stop growing). A body that does not parse
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
    let (media, params) = media_type(content_type);
    if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        form_parts(body, Target::Body, Target::Body, max, out);
        return;
    }
    if is_json(media) {
        if !json_parts::<false>(body, json, max, out) {
            push_with(out, max, || whole(body));
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
    push_with(out, max, || whole(body));
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
    /// The walk's key path, kept for its capacity.
    path: Vec<u8>,
}

impl JsonText {
    /// Forgets the last request's text.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.names.clear();
        self.numbers.clear();
    }
}

/// The most containers serde_json lets a document have open at once (its
/// recursion limit of 128 refuses the 128th).
const JSON_NESTING: usize = 127;

/// An open container during [`JsonScan`].
#[derive(Clone, Copy)]
struct Frame {
    array: bool,
    /// The container's own key-path length.
    base: usize,
    /// The index of the current element (arrays).
    index: usize,
}

/// The walk of a JSON body (no document tree): each object key, string and
/// number becomes a part at once, in document order, duplicate keys included
/// (serde_json's `Value` keeps only the last of duplicate keys, which an
/// attacker could use to hide the first from the scan while a first-wins
/// application reads it). It accepts exactly what serde_json parses into values
/// (checked against it by property tests): the grammar is walked here, and the rare
/// tokens whose value takes real decoding — strings with escapes, numbers
/// other than short integers and decimals — are decoded by serde_json itself.
/// Strings and numbers borrow from the body when they are the value's text
/// (no escape; written by serde_json as sent); names and rewritten numbers
/// are written to `text`, and [`json_parts`] points the parts at it once the
/// walk is over.
/// No recursion: open containers sit on a fixed stack of [`JSON_NESTING`].
///
/// With `NAMES` false the walk keeps no key path and the parts' names are
/// empty: building the paths cost a quarter of collecting a request's parts,
/// and they are only needed for the audit line of a part that matched
/// ([`json_part_names`] walks again for it).
struct JsonScan<'o, 'a, const NAMES: bool> {
    body: &'a [u8],
    pos: usize,
    out: &'o mut Vec<Part<'a>>,
    /// `out.len()` before the walk.
    first: usize,
    max: usize,
    text: &'o mut JsonText,
    /// The key path of the current value.
    path: Vec<u8>,
}

/// The document is not JSON.
struct NotJson;

/// Whether `digits` (a number without its sign) is a decimal that serde_json
/// writes back unchanged: at most 15 significant digits (so it is the shortest
/// text of its `f64`, which is what serde_json writes), a fraction not ending
/// in 0, and a value from 0.1 up (written without an exponent).
fn short_decimal(digits: &[u8]) -> bool {
    let Some(dot) = memchr(b'.', digits) else {
        return false;
    };
    let (int, frac) = (&digits[..dot], &digits[dot + 1..]);
    let significant = match int {
        b"0" => frac.first().is_some_and(|&d| d != b'0') && frac.len() <= 15,
        [b'1'..=b'9', ..] => int.len() + frac.len() <= 15,
        _ => false,
    };
    significant
        && int.iter().all(u8::is_ascii_digit)
        && frac.iter().all(u8::is_ascii_digit)
        && frac.last().is_some_and(|&d| d != b'0')
}

/// Where the first byte of `s` that stops a plain JSON string is: `"`, `\\`,
/// a control byte or a non-ASCII one. Eight bytes per step (SWAR): for each
/// test the lowest flagged byte is exact (a false flag only ever sits above a
/// true one, from the borrow), so the lowest of all flags is the answer.
fn string_stop(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = s.chunks_exact(8);
    for (k, chunk) in (&mut chunks).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let stops = zero_byte(v ^ (ONES * u64::from(b'"')))
            | zero_byte(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH)
            | (v & HIGH);
        if stops != 0 {
            return Some(k * 8 + (stops.trailing_zeros() / 8) as usize);
        }
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\')
        .map(|p| s.len() - rest.len() + p)
}

impl<'a, const NAMES: bool> JsonScan<'_, 'a, NAMES> {
    // Inlined so the part is written in place: built on the stack and passed
    // in, its copy stalled on store forwarding (perf).
    #[inline(always)]
    fn push(&mut self, value: Cow<'a, [u8]>) {
        if self.out.len() >= self.max {
            return;
        }
        if NAMES {
            let start = self.text.bytes.len();
            self.text.bytes.extend_from_slice(&self.path);
            self.text.names.push((start, self.text.bytes.len()));
        }
        push_with(self.out, self.max, || Part {
            target: Target::Body,
            name: Cow::Borrowed(b""),
            value,
        });
    }

    /// A number's text as serde_json writes it, when that is not the text
    /// sent: written to `text` and pointed at after the walk.
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

    /// Sets the path to a child of the innermost of `depth` open containers,
    /// whose own path is `base` long; past [`JSON_DEPTH`] containers the path
    /// stops growing.
    fn child_path(&mut self, base: usize, depth: usize, child: impl FnOnce(&mut Vec<u8>)) {
        if !NAMES {
            return;
        }
        self.path.truncate(base);
        if depth <= JSON_DEPTH {
            child(&mut self.path);
            self.path.truncate(MAX_NAME);
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.body.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and `expected`.
    fn expect(&mut self, expected: u8) -> Result<(), NotJson> {
        self.skip_whitespace();
        if self.body.get(self.pos) != Some(&expected) {
            return Err(NotJson);
        }
        self.pos += 1;
        Ok(())
    }

    /// The string starting at `pos` (a `"`) when it is printable ASCII without
    /// escapes, as most are: one pass finds its end and checks it, eight bytes
    /// at a time ([`string_stop`]; for short strings cheaper than memchr's
    /// set-up). Returned in registers, so the part is built in place (a `Cow`
    /// returned through memory stalled on store forwarding when copied into
    /// the part).
    #[inline(always)]
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let inner = self.body.get(self.pos + 1..)?;
        let end = string_stop(inner)?;
        if inner.get(end) != Some(&b'"') {
            return None;
        }
        self.pos += end + 2;
        inner.get(..end)
    }

    /// The string starting at `pos` (a `"`), decoded: what
    /// [`plain_string`](Self::plain_string) leaves.
    #[inline(never)]
    fn string(&mut self) -> Result<Cow<'a, [u8]>, NotJson> {
        let body = self.body;
        let open = self.pos;
        let mut at = open + 1;
        let mut escaped = false;
        loop {
            let rest = body.get(at..).unwrap_or_default();
            let p = memchr2(b'"', b'\\', rest).ok_or(NotJson)?;
            if rest.get(p) == Some(&b'\\') {
                escaped = true;
                at += p + 2;
            } else {
                at += p;
                break;
            }
        }
        self.pos = at + 1;
        if escaped {
            // Escapes (`\uXXXX`, surrogate pairs) are rare: serde_json decodes them.
            let token = body.get(open..=at).ok_or(NotJson)?;
            let s: String = serde_json::from_slice(token).map_err(|_| NotJson)?;
            return Ok(Cow::Owned(s.into_bytes()));
        }
        let inner = body.get(open + 1..at).unwrap_or_default();
        if inner.iter().any(|&b| b < 0x20) || std::str::from_utf8(inner).is_err() {
            return Err(NotJson);
        }
        Ok(Cow::Borrowed(inner))
    }

    /// The number starting at `pos`, as text the way serde_json writes its value.
    fn number(&mut self) -> Result<(), NotJson> {
        let body = self.body;
        let start = self.pos;
        while matches!(
            body.get(self.pos),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.pos += 1;
        }
        let token = body.get(start..self.pos).unwrap_or_default();
        let digits = token.strip_prefix(b"-").unwrap_or(token);
        // A short integer without a leading zero is its own text (as itoa writes it).
        let plain = !digits.is_empty()
            && digits.len() <= 18
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.first() != Some(&b'0') || token == b"0");
        if plain || short_decimal(digits) {
            // Written as sent: borrowed from the body.
            self.push(Cow::Borrowed(token));
            return Ok(());
        }
        // Anything else serde_json parses and writes (`-2.5e3` → `-2500.0`).
        let n: serde_json::Number = serde_json::from_slice(token).map_err(|_| NotJson)?;
        let mut written = [0u8; 32];
        let mut w = &mut written[..];
        if std::io::Write::write_fmt(&mut w, format_args!("{n}")).is_ok() {
            let len = 32 - w.len();
            self.push_number(written.get(..len).unwrap_or_default());
        }
        Ok(())
    }

    /// An object key at `pos` (after whitespace), then its `:`.
    fn key(&mut self, frame: Frame, depth: usize) -> Result<(), NotJson> {
        self.skip_whitespace();
        if self.body.get(self.pos) != Some(&b'"') {
            return Err(NotJson);
        }
        let child = |path: &mut Vec<u8>, key: &[u8]| {
            if !path.is_empty() {
                path.push(b'.');
            }
            path.extend_from_slice(key);
        };
        if let Some(key) = self.plain_string() {
            self.child_path(frame.base, depth, |path| child(path, key));
            self.push(Cow::Borrowed(key));
        } else {
            let key = self.string()?;
            self.child_path(frame.base, depth, |path| child(path, &key));
            self.push(key);
        }
        self.expect(b':')
    }

    /// The whole body: one value and nothing after it but whitespace.
    fn document(&mut self) -> Result<(), NotJson> {
        let mut stack = [Frame {
            array: false,
            base: 0,
            index: 0,
        }; JSON_NESTING];
        let mut depth = 0usize;
        'value: loop {
            self.skip_whitespace();
            match self.body.get(self.pos).copied().ok_or(NotJson)? {
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    let array = open == b'[';
                    let frame = Frame {
                        array,
                        base: self.path.len(),
                        index: 0,
                    };
                    *stack.get_mut(depth).ok_or(NotJson)? = frame;
                    depth += 1;
                    self.skip_whitespace();
                    let close = if array { b']' } else { b'}' };
                    if self.body.get(self.pos) == Some(&close) {
                        self.pos += 1;
                        depth -= 1;
                        self.path.truncate(frame.base);
                    } else if array {
                        self.child_path(frame.base, depth, |path| path.extend_from_slice(b"[0]"));
                        continue 'value;
                    } else {
                        self.key(frame, depth)?;
                        continue 'value;
                    }
                }
                b'"' => {
                    if let Some(s) = self.plain_string() {
                        self.push(Cow::Borrowed(s));
                    } else {
                        let s = self.string()?;
                        self.push(s);
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(NotJson),
            }
            // After a value: the next element or key, or close containers.
            while let Some(frame) = depth.checked_sub(1).and_then(|d| stack.get(d)).copied() {
                self.skip_whitespace();
                let close = if frame.array { b']' } else { b'}' };
                match self.body.get(self.pos).copied() {
                    Some(b',') => {
                        self.pos += 1;
                        if frame.array {
                            let index = frame.index + 1;
                            if let Some(f) = stack.get_mut(depth - 1) {
                                f.index = index;
                            }
                            self.child_path(frame.base, depth, |path| {
                                path.push(b'[');
                                path.extend_from_slice(
                                    itoa::Buffer::new().format(index).as_bytes(),
                                );
                                path.push(b']');
                            });
                        } else {
                            self.key(frame, depth)?;
                        }
                        continue 'value;
                    }
                    Some(b) if b == close => {
                        self.pos += 1;
                        self.path.truncate(frame.base);
                        depth -= 1;
                    }
                    _ => return Err(NotJson),
                }
            }
            self.skip_whitespace();
            return if self.pos == self.body.len() {
                Ok(())
            } else {
                Err(NotJson)
            };
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), NotJson> {
        if !self
            .body
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
        {
            return Err(NotJson);
        }
        self.pos += word.len();
        Ok(())
    }
}

/// A Content-Type's media type (trimmed) and its parameters (after the `;`).
fn media_type(content_type: Option<&[u8]>) -> (&[u8], &[u8]) {
    let ct = content_type.unwrap_or_default();
    match memchr(b';', ct) {
        Some(p) => (
            ct.get(..p).unwrap_or_default().trim_ascii(),
            ct.get(p + 1..).unwrap_or_default(),
        ),
        None => (ct.trim_ascii(), &b""[..]),
    }
}

fn is_json(media: &[u8]) -> bool {
    media.eq_ignore_ascii_case(b"application/json") || ends_with_ignore_case(media, b"+json")
}

/// The names [`body_parts`] leaves empty: the key paths (`items[0].sku`) of
/// the first `count` parts of a JSON body (fewer if it has fewer). None for a
/// body that is not JSON. Found by walking the body again, naming its parts,
/// which only the audit line of a part that matched needs.
pub fn json_part_names(
    content_type: Option<&[u8]>,
    body: &[u8],
    count: usize,
) -> Option<Vec<Vec<u8>>> {
    if !is_json(media_type(content_type).0) {
        return None;
    }
    let (mut text, mut out) = (JsonText::default(), Vec::new());
    json_parts::<true>(body, &mut text, count, &mut out)
        .then(|| out.iter().map(|p| p.name.to_vec()).collect())
}

/// The parts of a JSON `body` (see [`body_parts`]), their names (if `NAMES`)
/// and numbers in `text`; false, with nothing appended, when the body is not
/// JSON.
fn json_parts<'a, const NAMES: bool>(
    body: &'a [u8],
    text: &'a mut JsonText,
    max: usize,
    out: &mut Vec<Part<'a>>,
) -> bool {
    let first = out.len();
    let mut scan = JsonScan::<NAMES> {
        body,
        pos: 0,
        out,
        first,
        max,
        path: std::mem::take(&mut text.path),
        text: &mut *text,
    };
    let parsed = scan.document();
    let mut path = scan.path;
    path.clear();
    text.path = path;
    if parsed.is_err() {
        out.truncate(first);
        return false;
    }
    let text: &'a JsonText = text;
    let walked = out.get_mut(first..).unwrap_or_default();
    if NAMES {
        for (part, &(start, end)) in walked.iter_mut().zip(&text.names) {
            part.name = Cow::Borrowed(text.bytes.get(start..end).unwrap_or_default());
        }
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
                push_with(out, max, || Part {
                    target: Target::Body,
                    name: Cow::Borrowed(b""),
                    value: Cow::Owned(s.into_bytes()),
                });
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
                push_with(out, max, || field(file));
            }
            let head = content
                .get(..content.len().min(FILE_HEAD))
                .unwrap_or_default();
            if !head.is_empty() {
                push_with(out, max, || field(head));
            }
        } else if !content.is_empty() {
            push_with(out, max, || field(content));
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

    /// The body's parts, JSON ones named by [`json_part_names`].
    fn body(ct: Option<&str>, b: &[u8]) -> Vec<(Target, String, String)> {
        let ct = ct.map(str::as_bytes);
        let (mut names, mut out) = (JsonText::default(), Vec::new());
        body_parts(ct, b, &mut names, 100, &mut out);
        let mut shown = show(&out);
        if let Some(names) = json_part_names(ct, b, usize::MAX) {
            assert_eq!(names.len(), shown.len());
            for (part, name) in shown.iter_mut().zip(names) {
                assert_eq!(part.1, "", "collected JSON parts have no names");
                part.1 = String::from_utf8(name).unwrap();
            }
            // Asked for fewer, the first ones.
            let first = json_part_names(ct, b, 1).unwrap();
            assert_eq!(first.len(), shown.len().min(1));
        }
        shown
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

    proptest! {
        #[test]
        fn string_stop_is_the_first_stopping_byte(s in proptest::collection::vec(
            proptest::sample::select(&b"ab \"\\\x00\x1f\x20\x7f\x80\xff~"[..]), 0..40)
        ) {
            let expected = s
                .iter()
                .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\');
            prop_assert_eq!(string_stop(&s), expected);
        }
    }

    #[test]
    fn recycled_parts_keep_their_allocation() {
        let mut parts: Vec<Part<'static>> = Vec::with_capacity(64);
        let at = parts.as_ptr();
        for _ in 0..3 {
            let query = String::from("a=1&b=2");
            let mut borrowing = recycle(parts);
            query_parts(query.as_bytes(), 100, &mut borrowing);
            assert_eq!(borrowing.len(), 4);
            parts = recycle(borrowing);
            assert!(parts.is_empty());
            assert_eq!((parts.as_ptr(), parts.capacity()), (at, 64));
        }
    }

    #[test]
    fn short_decimals_are_written_as_serde_json_writes_them() {
        let write = |t: &str| {
            serde_json::from_str::<serde_json::Number>(t)
                .unwrap()
                .to_string()
        };
        for t in [
            "24.5",
            "39.99",
            "0.1",
            "0.99",
            "-0.5",
            "1.5",
            "123456789012.345",
            "-7.25",
            "99999999999999.9",
            "0.123456789012345",
            "3.141592653589793",
        ] {
            let digits = t.strip_prefix('-').unwrap_or(t).as_bytes();
            if short_decimal(digits) {
                assert_eq!(write(t), t);
            }
        }
        for t in [
            "24.5",
            "0.1",
            "-0.5",
            "99999999999999.9",
            "0.123456789012345",
        ] {
            assert!(
                short_decimal(t.strip_prefix('-').unwrap_or(t).as_bytes()),
                "{t}"
            );
        }
        // Serde_json writes these otherwise: left to it.
        for t in [
            "24.50",
            "0.05",
            "00.5",
            "1.",
            ".5",
            "1.5e3",
            "3.141592653589793",
            "1234567890123456.5",
            "0.1234567890123456",
        ] {
            assert!(!short_decimal(t.as_bytes()), "{t}");
        }
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
        let names = json_part_names(Some(b"application/json"), b.as_bytes(), 4).unwrap();
        assert_eq!(names.len(), 4);
        assert!(names.iter().all(|n| n.len() == MAX_NAME));
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

    /// The parts of a document serde_json parsed: what the walk must give when
    /// no key repeats.
    fn reference_walk(
        v: &serde_json::Value,
        path: &mut Vec<u8>,
        depth: usize,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        use serde_json::Value;
        let base = path.len();
        let child = |path: &mut Vec<u8>, name: &[u8]| {
            path.truncate(base);
            if depth < JSON_DEPTH {
                path.extend_from_slice(name);
                path.truncate(MAX_NAME);
            }
        };
        match v {
            Value::String(s) => out.push((path.clone(), s.as_bytes().to_vec())),
            Value::Number(n) => out.push((path.clone(), n.to_string().into_bytes())),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    child(path, format!("[{i}]").as_bytes());
                    reference_walk(item, path, depth + 1, out);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let dot = if base == 0 { "" } else { "." };
                    child(path, format!("{dot}{k}").as_bytes());
                    out.push((path.clone(), k.as_bytes().to_vec()));
                    reference_walk(item, path, depth + 1, out);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
        path.truncate(base);
    }

    /// `v` as JSON text, with whitespace and `\u` escapes (surrogate pairs
    /// beyond the BMP) where `choice` says.
    fn write_json(v: &serde_json::Value, choice: &mut impl FnMut() -> u8, out: &mut String) {
        use serde_json::Value;
        let space = |choice: &mut dyn FnMut() -> u8, out: &mut String| {
            out.push_str([" ", "", "\n\t", "", "\r\n  "][usize::from(choice() % 5)]);
        };
        let string = |s: &str, choice: &mut dyn FnMut() -> u8, out: &mut String| {
            out.push('"');
            for c in s.chars() {
                let must = c < ' ' || c == '"' || c == '\\';
                if must || choice() % 4 == 0 {
                    match c {
                        '"' if choice() % 2 == 0 => out.push_str("\\\""),
                        '\\' if choice() % 2 == 0 => out.push_str("\\\\"),
                        '\n' if choice() % 2 == 0 => out.push_str("\\n"),
                        '/' => out.push_str("\\/"),
                        _ => {
                            let mut units = [0u16; 2];
                            for u in c.encode_utf16(&mut units) {
                                out.push_str(&format!("\\u{u:04X}"));
                            }
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            out.push('"');
        };
        space(choice, out);
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => string(s, choice, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json(item, choice, out);
                }
                space(choice, out);
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(choice, out);
                    string(k, choice, out);
                    space(choice, out);
                    out.push(':');
                    write_json(item, choice, out);
                }
                space(choice, out);
                out.push('}');
            }
        }
        space(choice, out);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let text = proptest::collection::vec(
            proptest::sample::select(vec![
                'a', 'Z', ' ', '"', '\\', '/', '\n', '\u{1}', '\u{7f}', 'é', '€', '😀', '\u{ffff}',
                '.', '[',
            ]),
            0..8,
        )
        .prop_map(|c| c.into_iter().collect::<String>());
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0i64..1000).prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn walked(b: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let (mut text, mut out) = (JsonText::default(), Vec::new());
        json_parts::<true>(b, &mut text, usize::MAX, &mut out).then(|| {
            out.iter()
                .map(|p| (p.name.to_vec(), p.value.to_vec()))
                .collect()
        })
    }

    /// Whether serde_json parses `b` into values (as the walk did when it was
    /// a serde visitor: unlike `IgnoredAny`, that refuses numbers out of `f64`'s
    /// range and containers nested past its recursion limit).
    fn serde_accepts(b: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(b).is_ok()
    }

    #[test]
    fn json_nesting_limit_is_serde_json_s() {
        for depth in [126, 127, 128, 129] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let b = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                assert_eq!(
                    walked(b.as_bytes()).is_some(),
                    serde_accepts(b.as_bytes()),
                    "{depth}"
                );
            }
        }
    }

    #[test]
    fn json_tokens_like_serde_json() {
        for b in [
            &b"01"[..],
            b"-0",
            b"-",
            b"1.",
            b".5",
            b"1e",
            b"1e+",
            b"-01",
            b"1e400",
            b"18446744073709551616",
            b"-9223372036854775809",
            b"123456789012345678",
            b"1234567890123456789",
            b"1.0E-2",
            b"\"\\ud800\"",
            b"\"\\ud83d\\ude00\"",
            b"\"\\udc00\\ud800\"",
            b"\"\\x\"",
            b"\"\xff\"",
            b"\"\t\"",
            b"tru",
            b"nulll",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:2}",
            b"[] []",
            b" \r\n[ ]\t",
            b"",
            b" ",
            b"\"a\\\"",
        ] {
            let ours = walked(b);
            assert_eq!(
                ours.is_some(),
                serde_accepts(b),
                "{}",
                String::from_utf8_lossy(b)
            );
            if let Some(ours) = ours {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                let mut expected = Vec::new();
                reference_walk(&v, &mut Vec::new(), 0, &mut expected);
                assert_eq!(ours, expected, "{}", String::from_utf8_lossy(b));
            }
        }
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
        fn json_walk_gives_serde_json_s_values(v in json_value(), seed in any::<u64>()) {
            let mut state = seed | 1;
            let mut choice = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            };
            let mut text = String::new();
            write_json(&v, &mut choice, &mut text);
            // The values as serde_json reads them back (its float parsing is
            // not always the shortest round trip).
            let read: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut expected = Vec::new();
            reference_walk(&read, &mut Vec::new(), 0, &mut expected);
            prop_assert_eq!(walked(text.as_bytes()), Some(expected), "{}", text);
        }

        #[test]
        fn json_walk_accepts_what_serde_json_accepts(b in any_body()) {
            prop_assert_eq!(walked(&b).is_some(), serde_accepts(&b));
        }

        #[test]
        fn json_walk_accepts_mutated_documents_as_serde_json(v in json_value(), at in any::<usize>(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut b = serde_json::to_vec(&v).unwrap();
            let at = at % (b.len() + 1);
            if cut {
                b.truncate(at);
            } else {
                b.insert(at, byte);
            }
            prop_assert_eq!(walked(&b).is_some(), serde_accepts(&b));
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
