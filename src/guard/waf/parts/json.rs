//! The one-pass JSON walk: a JSON body's keys and values as parts, without a
//! document tree or recursion (see the module doc of `parts`).

use super::*;

/// The text JSON body parts borrow: their key-path names and their numbers
/// written as text, collected during the walk (so they cost no allocation
/// each) and reused between requests.
#[derive(Debug, Default)]
pub struct JsonText {
    pub(super) bytes: Vec<u8>,
    /// Per part pushed by the walk: its name's span in `bytes`.
    pub(super) names: Vec<(usize, usize)>,
    /// Per number: (its part's index among the walk's, its text's span).
    pub(super) numbers: Vec<(usize, usize, usize)>,
    /// The walk's key path, kept for its capacity.
    pub(super) path: Vec<u8>,
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
pub(super) const JSON_NESTING: usize = 127;

/// An open container during [`JsonScan`].
#[derive(Clone, Copy)]
pub(super) struct Frame {
    pub(super) array: bool,
    /// The container's own key-path length.
    pub(super) base: usize,
    /// The index of the current element (arrays).
    pub(super) index: usize,
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
pub(super) struct JsonScan<'o, 'a, const NAMES: bool> {
    pub(super) body: &'a [u8],
    pub(super) pos: usize,
    pub(super) out: &'o mut Vec<Part<'a>>,
    /// `out.len()` before the walk.
    pub(super) first: usize,
    pub(super) max: usize,
    pub(super) text: &'o mut JsonText,
    /// The key path of the current value.
    pub(super) path: Vec<u8>,
}

/// The document is not JSON.
pub(super) struct NotJson;

/// Whether `digits` (a number without its sign) is a decimal that serde_json
/// writes back unchanged: at most 15 significant digits (so it is the shortest
/// text of its `f64`, which is what serde_json writes), a fraction not ending
/// in 0, and a value from 0.1 up (written without an exponent).
pub(super) fn short_decimal(digits: &[u8]) -> bool {
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
pub(super) fn string_stop(s: &[u8]) -> Option<usize> {
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
    pub(super) fn push(&mut self, value: Cow<'a, [u8]>) {
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
    pub(super) fn push_number(&mut self, number: &[u8]) {
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
    pub(super) fn child_path(
        &mut self,
        base: usize,
        depth: usize,
        child: impl FnOnce(&mut Vec<u8>),
    ) {
        if !NAMES {
            return;
        }
        self.path.truncate(base);
        if depth <= JSON_DEPTH {
            child(&mut self.path);
            self.path.truncate(MAX_NAME);
        }
    }

    pub(super) fn skip_whitespace(&mut self) {
        while matches!(self.body.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and `expected`.
    pub(super) fn expect(&mut self, expected: u8) -> Result<(), NotJson> {
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
    pub(super) fn plain_string(&mut self) -> Option<&'a [u8]> {
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
    pub(super) fn string(&mut self) -> Result<Cow<'a, [u8]>, NotJson> {
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
    pub(super) fn number(&mut self) -> Result<(), NotJson> {
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
    pub(super) fn key(&mut self, frame: Frame, depth: usize) -> Result<(), NotJson> {
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
    pub(super) fn document(&mut self) -> Result<(), NotJson> {
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

    pub(super) fn literal(&mut self, word: &[u8]) -> Result<(), NotJson> {
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
pub(super) fn json_parts<'a, const NAMES: bool>(
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
pub(super) fn escaped_json_strings<'a>(body: &'a [u8], max: usize, out: &mut Vec<Part<'a>>) {
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
