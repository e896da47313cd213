//! `html_decode`'s character references: the named entities it knows and the
//! numeric and legacy forms browsers accept (see the parent module's doc for the
//! exact rules).

use memchr::memchr;

use super::push_code_point;

/// Named character references decoded with their `;` (code point < U+0100 each,
/// so a decoded entity is always shorter than its reference).
pub const NAMED: &[(&[u8], u8)] = &[
    (b"lt", b'<'),
    (b"LT", b'<'),
    (b"gt", b'>'),
    (b"GT", b'>'),
    (b"amp", b'&'),
    (b"AMP", b'&'),
    (b"quot", b'"'),
    (b"QUOT", b'"'),
    (b"apos", b'\''),
    (b"nbsp", 0xA0),
    (b"lpar", b'('),
    (b"rpar", b')'),
    (b"colon", b':'),
    (b"sol", b'/'),
    (b"bsol", b'\\'),
    (b"semi", b';'),
    (b"comma", b','),
    (b"period", b'.'),
    (b"equals", b'='),
    (b"Tab", b'\t'),
    (b"NewLine", b'\n'),
    (b"grave", b'`'),
    (b"DiacriticalGrave", b'`'),
    (b"excl", b'!'),
    (b"num", b'#'),
    (b"dollar", b'$'),
    (b"percnt", b'%'),
    (b"plus", b'+'),
    (b"quest", b'?'),
    (b"commat", b'@'),
    (b"lsqb", b'['),
    (b"lbrack", b'['),
    (b"rsqb", b']'),
    (b"rbrack", b']'),
    (b"lcub", b'{'),
    (b"lbrace", b'{'),
    (b"rcub", b'}'),
    (b"rbrace", b'}'),
    (b"verbar", b'|'),
    (b"vert", b'|'),
    (b"VerticalLine", b'|'),
    (b"Hat", b'^'),
    (b"lowbar", b'_'),
    (b"UnderBar", b'_'),
    (b"ast", b'*'),
    (b"midast", b'*'),
    (b"hyphen", b'-'),
    (b"dash", b'-'),
    (b"tilde", b'~'),
];

/// Legacy names browsers decode without `;`, even followed by letters.
const LEGACY: &[(&[u8], u8)] = &[
    (b"lt", b'<'),
    (b"LT", b'<'),
    (b"gt", b'>'),
    (b"GT", b'>'),
    (b"amp", b'&'),
    (b"AMP", b'&'),
    (b"quot", b'"'),
    (b"QUOT", b'"'),
    (b"nbsp", 0xA0),
];

/// Longest name in [`NAMED`].
const MAX_NAME: usize = 16;

/// The character reference at `s[0..]` (`s[0]` is `&`): its code point and the
/// bytes it spans.
fn entity(s: &[u8]) -> Option<(u32, usize)> {
    if s.get(1) == Some(&b'#') {
        let (radix, start) = match s.get(2) {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let mut cp: u32 = 0;
        let mut j = start;
        while let Some(d) = s.get(j).and_then(|&c| (c as char).to_digit(radix)) {
            // Saturate just past the last code point: any longer number is invalid.
            cp = cp.saturating_mul(radix).saturating_add(d).min(0x11_0000);
            j += 1;
        }
        if j == start || cp > 0x10_FFFF || (0xD800..=0xDFFF).contains(&cp) {
            return None;
        }
        if s.get(j) == Some(&b';') {
            j += 1;
        }
        return Some((cp, j));
    }
    let name_len = s
        .iter()
        .skip(1)
        .take(MAX_NAME + 1)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let name = s.get(1..1 + name_len).unwrap_or_default();
    if s.get(1 + name_len) == Some(&b';') {
        if let Some(&(_, b)) = NAMED.iter().find(|(n, _)| *n == name) {
            return Some((u32::from(b), name_len + 2));
        }
    }
    LEGACY
        .iter()
        .find(|(n, _)| name.starts_with(n))
        .map(|&(n, b)| (u32::from(b), n.len() + 1))
}

pub(super) fn html_decode(src: &[u8], dst: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() {
        let rest = src.get(i..).unwrap_or_default();
        let Some(p) = memchr(b'&', rest) else {
            dst.extend_from_slice(rest);
            break;
        };
        dst.extend_from_slice(rest.get(..p).unwrap_or_default());
        i += p;
        match entity(src.get(i..).unwrap_or_default()) {
            Some((cp, used)) => {
                push_code_point(cp, dst);
                i += used;
            }
            None => {
                dst.push(b'&');
                i += 1;
            }
        }
    }
}
