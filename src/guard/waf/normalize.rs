//! The transforms a rule's chain applies to a request part before matching
//! ([`Transform`], [`apply`]): URL and HTML entity decoding, ASCII lower-casing,
//! whitespace compression, SQL comment removal, path normalization, NUL removal
//! and the fullwidth fold — the evasion-undoing steps of ModSecurity's
//! `t:urlDecodeUni`, `t:htmlEntityDecode`, `t:lowercase`, `t:compressWhitespace`,
//! `t:replaceComments`, `t:normalizePath` and `t:removeNulls`.
//!
//! Every transform works on bytes (any input, valid UTF-8 or not), never panics
//! and never makes its input longer, so a chain's output is at most as long as
//! the part it was given. [`apply`] ping-pongs between two caller-owned buffers
//! and allocates nothing once they have grown to the largest part.
//! [`changes_only_case`] tells the values none of them but `lowercase` would
//! change: those without any of [`rewritable_sequences`] (which
//! [`has_rewritable`], hand-written hot-path code, finds with one table lookup
//! per byte).
//!
//! What each one does, exactly:
//!
//! - `url_decode`: `%XX` → the byte; `%uXXXX` (IIS, either case of `u`) → the byte
//!   for code points below U+0100, ASCII for the fullwidth forms U+FF01–U+FF5E,
//!   UTF-8 otherwise (a high surrogate followed by a `%uXXXX` low surrogate is
//!   combined into one 4-byte character; a lone surrogate is left as written);
//!   `+` → space. Invalid escapes (`%zz`, `%2`, `%u12`) are left as written. The
//!   pass repeats while it changes something, at most [`URL_DECODE_PASSES`] times,
//!   so double and triple encoding (`%2527`, `%252527`) are undone.
//! - `html_decode`: one pass. `&#DDD` and `&#xHHH` (`X` too), with any number of
//!   leading zeros and with or without the closing `;` (browsers accept both);
//!   code points below U+0100 become that byte (so `&#0;` is a NUL and `&nbsp;`
//!   the byte 0xA0), others UTF-8; surrogates and code points past U+10FFFF are
//!   left as written. Named entities from [`NAMED`] need their `;`, except the
//!   legacy ones browsers decode without it even as a prefix (`&lt`, `&gt`,
//!   `&amp`, `&quot`, `&nbsp`, and `&LT`, `&GT`, `&AMP`, `&QUOT`): `&ltscript` →
//!   `<script`. Unknown names are left as written.
//! - `lowercase`: ASCII A–Z only.
//! - `compress_whitespace`: every run of space, `\t`, `\n`, `\r`, `\f`, `\v`,
//!   U+00A0 written as UTF-8 (`C2 A0`) or as a lone Latin-1 byte `A0` becomes one
//!   space. An `A0` byte that is the continuation byte of another UTF-8 character
//!   (`à` is `C3 A0`) is left alone.
//! - `remove_sql_comments`: a `/* … */` comment becomes one space (so
//!   `SEL/**/ECT` → `SEL ECT`, as ModSecurity's `replaceComments`, and
//!   `UNION/**/SELECT` → `UNION SELECT`); an unterminated `/*` runs to the end
//!   and becomes one space. A MySQL/MariaDB executable comment keeps its content:
//!   the opener `/*!` or `/*M!` with up to five version digits becomes one space,
//!   the content is processed as usual, and its closing `*/` becomes one space
//!   (`UNION/*!50000SELECT*/` → `UNION SELECT `, `/*!50000 x*/` → `  x `). A stray
//!   `*/` outside an executable comment is kept. `--` and `#` start a line
//!   comment, removed up to (not including) the next `\n` or `\r`, or to the end.
//!   String literals are not tracked: a comment marker inside quotes is treated
//!   as a comment too, so `'--' UNION SELECT …` or `'/*' UNION …` loses what
//!   follows in this chain's view — rules should also look at the part through a
//!   chain without this transform. Run `html_decode` before it (`&#39;` holds a
//!   `#`).
//! - `normalize_path`: `\` → `/`, runs of `/` collapse to one, `.` segments are
//!   dropped, a `..` segment removes the segment before it; a `..` with nothing
//!   left to remove is kept, so climbing above the start stays visible
//!   (`a/../../etc/passwd` → `../etc/passwd`, `/a/../../etc/passwd` →
//!   `/../etc/passwd`, `..\..\windows` → `../../windows`). A leading `/` is kept;
//!   a trailing `/`, `/.` or resolved `/..` leaves a trailing `/` (`a/b/..` →
//!   `a/`, but `..` stays `..`). It works on the whole value (a parameter
//!   holding a path as well as the request path).
//! - `remove_nulls`: every 0x00 byte is dropped (`%00` and `&#0;` only once
//!   decoded by an earlier transform of the chain).
//! - `fullwidth_fold`: the UTF-8 of the fullwidth forms U+FF01–U+FF5E → ASCII
//!   0x21–0x7E (`＜ｓｃｒｉｐｔ＞` → `<script>`) and U+3000 (ideographic space) →
//!   space. Only these: other look-alikes (mathematical alphanumerics, small form
//!   variants, halfwidth forms, overlong UTF-8) are not folded.

mod html;

use html::html_decode;
pub use html::NAMED;

use memchr::{memchr, memchr2, memchr3, memrchr};

/// One step of a rule's transform chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    UrlDecode,
    HtmlDecode,
    Lowercase,
    CompressWhitespace,
    RemoveSqlComments,
    NormalizePath,
    RemoveNulls,
    FullwidthFold,
}

const ALL: [Transform; 8] = [
    Transform::UrlDecode,
    Transform::HtmlDecode,
    Transform::Lowercase,
    Transform::CompressWhitespace,
    Transform::RemoveSqlComments,
    Transform::NormalizePath,
    Transform::RemoveNulls,
    Transform::FullwidthFold,
];

impl Transform {
    /// From the rule file names: "url_decode", "html_decode", "lowercase",
    /// "compress_whitespace", "remove_sql_comments", "normalize_path",
    /// "remove_nulls", "fullwidth_fold".
    pub fn parse(s: &str) -> Option<Transform> {
        ALL.into_iter().find(|t| t.name() == s)
    }

    /// The name [`Transform::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Transform::UrlDecode => "url_decode",
            Transform::HtmlDecode => "html_decode",
            Transform::Lowercase => "lowercase",
            Transform::CompressWhitespace => "compress_whitespace",
            Transform::RemoveSqlComments => "remove_sql_comments",
            Transform::NormalizePath => "normalize_path",
            Transform::RemoveNulls => "remove_nulls",
            Transform::FullwidthFold => "fullwidth_fold",
        }
    }
}

/// `url_decode` repeats while it changes something, at most this many times.
pub const URL_DECODE_PASSES: usize = 3;

/// Applies `chain` in order to `input`, writing into `out` (cleared first) and
/// using `scratch` as a second buffer (ping-pong, no allocation once the buffers
/// have grown). No transform lengthens its input, so `out.len() <= input.len()`.
pub fn apply(chain: &[Transform], input: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(input);
    for &t in chain {
        match t {
            Transform::Lowercase => out.make_ascii_lowercase(),
            Transform::RemoveNulls => out.retain(|&b| b != 0),
            Transform::UrlDecode => {
                for _ in 0..URL_DECODE_PASSES {
                    if memchr2(b'%', b'+', out).is_none() {
                        break;
                    }
                    scratch.clear();
                    if !url_decode(out, scratch) {
                        break;
                    }
                    std::mem::swap(out, scratch);
                }
            }
            Transform::HtmlDecode => {
                if memchr(b'&', out).is_some() {
                    scratch.clear();
                    html_decode(out, scratch);
                    std::mem::swap(out, scratch);
                }
            }
            Transform::CompressWhitespace => {
                scratch.clear();
                compress_whitespace(out, scratch);
                std::mem::swap(out, scratch);
            }
            Transform::RemoveSqlComments => {
                if memchr3(b'/', b'-', b'#', out).is_some() {
                    scratch.clear();
                    remove_sql_comments(out, scratch);
                    std::mem::swap(out, scratch);
                }
            }
            Transform::NormalizePath => {
                scratch.clear();
                normalize_path(out, scratch);
                std::mem::swap(out, scratch);
            }
            Transform::FullwidthFold => {
                if memchr2(0xEF, 0xE3, out).is_some() {
                    scratch.clear();
                    fullwidth_fold(out, scratch);
                    std::mem::swap(out, scratch);
                }
            }
        }
    }
}

/// [`has_rewritable`]'s byte classes: a byte some transform other than
/// `lowercase` may rewrite wherever it is (`%`, `+`, `&`, `\`, `#`, control
/// bytes, DEL and every non-ASCII byte).
const ALONE: u8 = 1;
/// A byte that starts a two-byte sequence a transform rewrites, by which one.
const FIRST_SLASH: u8 = 2;
const FIRST_DASH: u8 = 4;
const FIRST_SPACE: u8 = 8;
const FIRST_DOT: u8 = 16;

/// Per byte: `ALONE` and the `FIRST_*` bit it sets in the low byte; in the high
/// byte, the `FIRST_*` bits of the bytes that, just before it, make a pair some
/// transform rewrites: `/*` (a comment), `--` (a line comment), two spaces
/// (a whitespace run), `//`, `/.` and `./` (path segments to resolve).
const CLASSES: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        if b < 0x20 || b >= 0x7F {
            t[b] = ALONE as u16;
        }
        b += 1;
    }
    t[b'%' as usize] = ALONE as u16;
    t[b'+' as usize] = ALONE as u16;
    t[b'&' as usize] = ALONE as u16;
    t[b'\\' as usize] = ALONE as u16;
    t[b'#' as usize] = ALONE as u16;
    t[b'/' as usize] = (FIRST_SLASH as u16) | (((FIRST_SLASH | FIRST_DOT) as u16) << 8);
    t[b'-' as usize] = (FIRST_DASH as u16) | ((FIRST_DASH as u16) << 8);
    t[b' ' as usize] = (FIRST_SPACE as u16) | ((FIRST_SPACE as u16) << 8);
    t[b'.' as usize] = (FIRST_DOT as u16) | ((FIRST_SLASH as u16) << 8);
    t[b'*' as usize] = (FIRST_SLASH as u16) << 8;
    t
};

/// Whether every transform but `lowercase` leaves `value` as it is, so that any
/// chain's output is `value` itself or its ASCII lower case (the WAF's fast path
/// for the values of ordinary requests): it holds none of
/// [`rewritable_sequences`] and is not `.` or `..` (path segments on their
/// own). It may say no for a value nothing would change (a `%` not followed by
/// hex digits), never yes for one something would. Lower-casing keeps the answer.
pub fn changes_only_case(value: &[u8]) -> bool {
    !has_rewritable(value) && value != b"." && value != b".."
}

/// Whether `value` holds one of [`rewritable_sequences`]. One table lookup per
/// byte.
pub fn has_rewritable(value: &[u8]) -> bool {
    let mut bad = 0u8;
    let mut prev_first = 0u8;
    for &b in value {
        let [own, pairs_after] = CLASSES[usize::from(b)].to_le_bytes();
        bad |= (own & ALONE) | (prev_first & pairs_after);
        prev_first = own & !ALONE;
    }
    bad != 0
}

/// The bytes and byte pairs that some transform but `lowercase` may rewrite
/// wherever they are: `%`, `+`, `&`, `\`, `#`, control bytes, DEL, every
/// non-ASCII byte, and `/*`, `--`, two spaces, `//`, `/.`, `./`.
pub fn rewritable_sequences() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for b in 0..=u8::MAX {
        let [own, _] = CLASSES[usize::from(b)].to_le_bytes();
        if own & ALONE != 0 {
            all.push(vec![b]);
        }
    }
    for first in 0..=u8::MAX {
        let [own, _] = CLASSES[usize::from(first)].to_le_bytes();
        for second in 0..=u8::MAX {
            let [_, pairs_after] = CLASSES[usize::from(second)].to_le_bytes();
            if own & !ALONE & pairs_after != 0 {
                all.push(vec![first, second]);
            }
        }
    }
    all
}

/// The byte of the two hex digits at `s[at..at + 2]`.
fn hex2(s: &[u8], at: usize) -> Option<u8> {
    let hi = crate::hex::digit(*s.get(at)?)?;
    let lo = crate::hex::digit(*s.get(at + 1)?)?;
    Some((hi << 4) | lo)
}

/// The value of the four hex digits at `s[at..at + 4]`.
fn hex4(s: &[u8], at: usize) -> Option<u32> {
    let hi = u32::from(hex2(s, at)?);
    let lo = u32::from(hex2(s, at + 2)?);
    Some((hi << 8) | lo)
}

/// `%uXXXX` at `s[0..]` (`s[0]` is `%`): the code point and the bytes used, a
/// surrogate pair written as two escapes being one code point.
fn percent_u(s: &[u8]) -> Option<(u32, usize)> {
    if !matches!(s.get(1), Some(b'u' | b'U')) {
        return None;
    }
    let cp = hex4(s, 2)?;
    match cp {
        0xD800..=0xDBFF => {
            if s.get(6) != Some(&b'%') || !matches!(s.get(7), Some(b'u' | b'U')) {
                return None;
            }
            let lo = hex4(s, 8)?;
            if !(0xDC00..=0xDFFF).contains(&lo) {
                return None;
            }
            Some((0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), 12))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((cp, 6)),
    }
}

/// Code points below U+0100 as that byte, others as UTF-8 (nothing for a
/// non-character, which callers never pass).
pub(super) fn push_code_point(cp: u32, dst: &mut Vec<u8>) {
    if let Ok(b) = u8::try_from(cp) {
        dst.push(b);
    } else if let Some(c) = char::from_u32(cp) {
        let mut buf = [0u8; 4];
        dst.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

/// One URL-decoding pass; whether anything was decoded.
fn url_decode(src: &[u8], dst: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        if b == b'+' {
            dst.push(b' ');
            changed = true;
            i += 1;
            continue;
        }
        if b == b'%' {
            if let Some(v) = hex2(src, i + 1) {
                dst.push(v);
                changed = true;
                i += 3;
                continue;
            }
            if let Some((cp, used)) = percent_u(src.get(i..).unwrap_or_default()) {
                match cp {
                    0xFF01..=0xFF5E => dst.push((cp - 0xFEE0) as u8),
                    _ => push_code_point(cp, dst),
                }
                changed = true;
                i += used;
                continue;
            }
        }
        // Copy up to the next escape candidate.
        let rest = src.get(i + 1..).unwrap_or_default();
        let next = memchr2(b'%', b'+', rest).map_or(src.len(), |p| i + 1 + p);
        dst.extend_from_slice(src.get(i..next).unwrap_or_default());
        i = next;
    }
    changed
}

/// Length of the well-formed (lead byte + continuation bytes) UTF-8 sequence
/// starting at `s[0]`, when it is a multi-byte one.
fn utf8_seq_len(s: &[u8]) -> Option<usize> {
    let n = match *s.first()? {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let cont = s.get(1..n)?;
    cont.iter().all(|&b| b & 0xC0 == 0x80).then_some(n)
}

fn compress_whitespace(src: &[u8], dst: &mut Vec<u8>) {
    let mut i = 0;
    let mut in_run = false;
    while let Some(&b) = src.get(i) {
        let ws_len = match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | 0xA0 => 1,
            0xC2 if src.get(i + 1) == Some(&0xA0) => 2,
            _ => 0,
        };
        if ws_len > 0 {
            if !in_run {
                dst.push(b' ');
                in_run = true;
            }
            i += ws_len;
            continue;
        }
        in_run = false;
        let n = utf8_seq_len(src.get(i..).unwrap_or_default()).unwrap_or(1);
        dst.extend_from_slice(src.get(i..i + n).unwrap_or_default());
        i += n;
    }
}

fn remove_sql_comments(src: &[u8], dst: &mut Vec<u8>) {
    let mut i = 0;
    let mut in_exec = false;
    while let Some(&b) = src.get(i) {
        let next = src.get(i + 1).copied();
        if b == b'/' && next == Some(b'*') {
            // Executable comment: `/*!` or `/*M!`, then up to five version digits.
            let bang = match (src.get(i + 2), src.get(i + 3)) {
                (Some(b'!'), _) => Some(i + 3),
                (Some(b'M'), Some(b'!')) => Some(i + 4),
                _ => None,
            };
            if let Some(mut j) = bang {
                let digits = src
                    .get(j..)
                    .unwrap_or_default()
                    .iter()
                    .take(5)
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                j += digits;
                dst.push(b' ');
                in_exec = true;
                i = j;
                continue;
            }
            let body = src.get(i + 2..).unwrap_or_default();
            dst.push(b' ');
            i = match memchr::memmem::find(body, b"*/") {
                Some(p) => i + 2 + p + 2,
                None => src.len(),
            };
            continue;
        }
        if in_exec && b == b'*' && next == Some(b'/') {
            dst.push(b' ');
            in_exec = false;
            i += 2;
            continue;
        }
        if b == b'#' || (b == b'-' && next == Some(b'-')) {
            let rest = src.get(i..).unwrap_or_default();
            i = memchr2(b'\n', b'\r', rest).map_or(src.len(), |p| i + p);
            continue;
        }
        dst.push(b);
        i += 1;
    }
}

fn normalize_path(src: &[u8], dst: &mut Vec<u8>) {
    let is_sep = |b: &u8| *b == b'/' || *b == b'\\';
    let absolute = src.first().is_some_and(is_sep);
    let base = usize::from(absolute);
    if absolute {
        dst.push(b'/');
    }
    // Whether the last segment asks for a trailing `/` (empty, `.` or a
    // resolved `..`).
    let mut trailing = false;
    for seg in src.split(is_sep) {
        match seg {
            b"" | b"." => trailing = true,
            b".." => {
                trailing = true;
                let tail = dst.get(base..).unwrap_or_default();
                let start = memrchr(b'/', tail).map_or(base, |p| base + p + 1);
                let last = dst.get(start..).unwrap_or_default();
                if !tail.is_empty() && last != b".." {
                    // Drop the last segment and the `/` before it.
                    dst.truncate(if start > base { start - 1 } else { base });
                } else {
                    // Kept: a `/` follows only if the input has one after it.
                    trailing = false;
                    if dst.len() > base {
                        dst.push(b'/');
                    }
                    dst.extend_from_slice(b"..");
                }
            }
            s => {
                trailing = false;
                if dst.len() > base {
                    dst.push(b'/');
                }
                dst.extend_from_slice(s);
            }
        }
    }
    if trailing && dst.len() > base && dst.last() != Some(&b'/') {
        dst.push(b'/');
    }
}

fn fullwidth_fold(src: &[u8], dst: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() {
        let rest = src.get(i..).unwrap_or_default();
        let Some(p) = memchr2(0xEF, 0xE3, rest) else {
            dst.extend_from_slice(rest);
            break;
        };
        dst.extend_from_slice(rest.get(..p).unwrap_or_default());
        i += p;
        let folded = match src.get(i..i + 3) {
            // U+FF01..=U+FF3F → 0x21..=0x5F
            Some(&[0xEF, 0xBC, c @ 0x81..=0xBF]) => Some(c - 0x60),
            // U+FF40..=U+FF5E → 0x60..=0x7E
            Some(&[0xEF, 0xBD, c @ 0x80..=0x9E]) => Some(c - 0x20),
            // U+3000 ideographic space
            Some(&[0xE3, 0x80, 0x80]) => Some(b' '),
            _ => None,
        };
        match folded {
            Some(c) => {
                dst.push(c);
                i += 3;
            }
            None => {
                if let Some(&b) = src.get(i) {
                    dst.push(b);
                }
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
