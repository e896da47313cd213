//! The SecLang transformation functions that CRS rules name in their `t:`
//! actions (`t:urlDecodeUni`, `t:htmlEntityDecode`, `t:cmdLine`, …), with the
//! semantics of libmodsecurity v3 (ModSecurity 3.x,
//! `src/actions/transformations/*.cc`), byte for byte.
//!
//! [`Transform::parse`] maps a `t:` name (case-insensitive, with ModSecurity's
//! aliases) to a [`Parsed`]: `t:none` is not a transformation but the signal
//! that resets a rule's chain. [`Transform::apply`] runs one transformation
//! over raw bytes (not necessarily UTF-8) into a caller-owned buffer; it never
//! panics, whatever the input.
//!
//! Where ModSecurity v2 (`apache2/re_tfns.c`, `msc_util.c`) and v3 differ, v3
//! is followed and the difference is noted at the function. Quirks of v3 are
//! kept on purpose (a rule set tuned against ModSecurity relies on them): for
//! example `t:hexDecode` does not validate its digits, `t:htmlEntityDecode`
//! keeps only the low byte of a numeric entity, and `t:jsDecode` and
//! `t:urlDecodeUni` keep only the low byte of `\uHHHH` / `%uHHHH` (with the
//! full-width ASCII block U+FF01–U+FF5E folded to ASCII), because no unicode
//! map (`SecUnicodeMapFile`) is loaded.
//!
//! "Whitespace" below is C's `isspace` in the "C" locale: space, `\t`, `\n`,
//! `\v`, `\f` and `\r`.

/// One SecLang transformation (`t:NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    /// `t:base64Decode`: strict Base64 decoding (mbedtls rules); invalid input gives an empty value.
    Base64Decode,
    /// `t:base64DecodeExt`: forgiving Base64 decoding that skips characters outside the alphabet.
    Base64DecodeExt,
    /// `t:base64Encode`: standard Base64 with `=` padding, no line breaks.
    Base64Encode,
    /// `t:cmdLine`: Windows/Unix command-line normalisation (drop `"'\^`, fold separators, lowercase).
    CmdLine,
    /// `t:compressWhitespace`: every run of whitespace becomes one space.
    CompressWhitespace,
    /// `t:cssDecode`: CSS 2 escapes (`\HHHHHH`, `\c`, backslash-newline).
    CssDecode,
    /// `t:escapeSeqDecode`: ANSI C escapes (`\n`, `\xHH`, `\OOO`, …).
    EscapeSeqDecode,
    /// `t:hexDecode`: pairs of hex digits to bytes (digits are not validated).
    HexDecode,
    /// `t:hexEncode`: every byte as two lowercase hex digits.
    HexEncode,
    /// `t:htmlEntityDecode`: `&#DDD;`, `&#xHH;` and ASCII named entities (`;` optional).
    HtmlEntityDecode,
    /// `t:jsDecode`: JavaScript escapes (`\uHHHH`, `\xHH`, `\OOO`, `\c`).
    JsDecode,
    /// `t:length`: the input's length in bytes, in decimal.
    Length,
    /// `t:lowercase`: ASCII `A`–`Z` to `a`–`z`.
    Lowercase,
    /// `t:md5`: the raw 16-byte MD5 digest.
    Md5,
    /// `t:normalisePath` (`t:normalizePath`): removes `./`, `//` and resolves `../`.
    NormalisePath,
    /// `t:normalisePathWin` (`t:normalizePathWin`): `\` to `/`, then as `normalisePath`.
    NormalisePathWin,
    /// `t:parityEven7bit`: sets bit 7 so that every byte has even parity.
    ParityEven7bit,
    /// `t:parityOdd7bit`: sets bit 7 so that every byte has odd parity.
    ParityOdd7bit,
    /// `t:parityZero7bit`: clears bit 7 of every byte.
    ParityZero7bit,
    /// `t:removeComments`: drops `/* */` and `<!-- -->` comments; `--` or `#` ends the value.
    RemoveComments,
    /// `t:removeCommentsChar`: drops the comment markers `/*`, `*/`, `<!--`, `-->`, `--` and `#`.
    RemoveCommentsChar,
    /// `t:removeNulls`: drops NUL bytes.
    RemoveNulls,
    /// `t:removeWhitespace`: drops whitespace and the bytes 0xA0 and 0xC2 (NBSP).
    RemoveWhitespace,
    /// `t:replaceComments`: each `/* … */` comment (closed or not) becomes one space.
    ReplaceComments,
    /// `t:replaceNulls`: NUL bytes become spaces.
    ReplaceNulls,
    /// `t:sha1`: the raw 20-byte SHA-1 digest.
    Sha1,
    /// `t:sqlHexDecode`: SQL hex literals (`0x414243`) to bytes.
    SqlHexDecode,
    /// `t:trim`: strips leading and trailing whitespace.
    Trim,
    /// `t:trimLeft`: strips leading whitespace.
    TrimLeft,
    /// `t:trimRight`: strips trailing whitespace.
    TrimRight,
    /// `t:uppercase`: ASCII `a`–`z` to `A`–`Z`.
    Uppercase,
    /// `t:urlDecode`: `%HH` to the byte and `+` to space; invalid escapes stay as written.
    UrlDecode,
    /// `t:urlDecodeUni`: as `urlDecode`, plus IIS `%uHHHH` (low byte; full-width ASCII folded).
    UrlDecodeUni,
    /// `t:urlEncode`: URL encoding (space to `+`; all but `*`, digits and letters to `%hh`).
    UrlEncode,
    /// `t:utf8toUnicode`: multi-byte UTF-8 sequences to `%uHHHH` notation.
    Utf8ToUnicode,
}

/// What a `t:` name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parsed {
    /// `t:none`: discard the transformations named so far (and the defaults).
    None,
    /// A transformation to append to the chain.
    Transform(Transform),
}

/// Every `t:` name accepted, canonical spellings first (see [`Transform::name`]).
const NAMES: &[(&str, Transform)] = &[
    ("base64Decode", Transform::Base64Decode),
    ("base64DecodeExt", Transform::Base64DecodeExt),
    ("base64Encode", Transform::Base64Encode),
    ("cmdLine", Transform::CmdLine),
    ("compressWhitespace", Transform::CompressWhitespace),
    ("cssDecode", Transform::CssDecode),
    ("escapeSeqDecode", Transform::EscapeSeqDecode),
    ("hexDecode", Transform::HexDecode),
    ("hexEncode", Transform::HexEncode),
    ("htmlEntityDecode", Transform::HtmlEntityDecode),
    ("jsDecode", Transform::JsDecode),
    ("length", Transform::Length),
    ("lowercase", Transform::Lowercase),
    ("md5", Transform::Md5),
    ("normalisePath", Transform::NormalisePath),
    ("normalisePathWin", Transform::NormalisePathWin),
    ("parityEven7bit", Transform::ParityEven7bit),
    ("parityOdd7bit", Transform::ParityOdd7bit),
    ("parityZero7bit", Transform::ParityZero7bit),
    ("removeComments", Transform::RemoveComments),
    ("removeCommentsChar", Transform::RemoveCommentsChar),
    ("removeNulls", Transform::RemoveNulls),
    ("removeWhitespace", Transform::RemoveWhitespace),
    ("replaceComments", Transform::ReplaceComments),
    ("replaceNulls", Transform::ReplaceNulls),
    ("sha1", Transform::Sha1),
    ("sqlHexDecode", Transform::SqlHexDecode),
    ("trim", Transform::Trim),
    ("trimLeft", Transform::TrimLeft),
    ("trimRight", Transform::TrimRight),
    ("uppercase", Transform::Uppercase),
    ("urlDecode", Transform::UrlDecode),
    ("urlDecodeUni", Transform::UrlDecodeUni),
    ("urlEncode", Transform::UrlEncode),
    ("utf8toUnicode", Transform::Utf8ToUnicode),
    // Aliases: the American spellings both v2 and v3 accept.
    ("normalizePath", Transform::NormalisePath),
    ("normalizePathWin", Transform::NormalisePathWin),
];

impl Transform {
    /// Every transformation, in declaration order.
    pub const ALL: [Transform; 35] = [
        Transform::Base64Decode,
        Transform::Base64DecodeExt,
        Transform::Base64Encode,
        Transform::CmdLine,
        Transform::CompressWhitespace,
        Transform::CssDecode,
        Transform::EscapeSeqDecode,
        Transform::HexDecode,
        Transform::HexEncode,
        Transform::HtmlEntityDecode,
        Transform::JsDecode,
        Transform::Length,
        Transform::Lowercase,
        Transform::Md5,
        Transform::NormalisePath,
        Transform::NormalisePathWin,
        Transform::ParityEven7bit,
        Transform::ParityOdd7bit,
        Transform::ParityZero7bit,
        Transform::RemoveComments,
        Transform::RemoveCommentsChar,
        Transform::RemoveNulls,
        Transform::RemoveWhitespace,
        Transform::ReplaceComments,
        Transform::ReplaceNulls,
        Transform::Sha1,
        Transform::SqlHexDecode,
        Transform::Trim,
        Transform::TrimLeft,
        Transform::TrimRight,
        Transform::Uppercase,
        Transform::UrlDecode,
        Transform::UrlDecodeUni,
        Transform::UrlEncode,
        Transform::Utf8ToUnicode,
    ];

    /// `t:` name → transform; case-insensitive; aliases (normalisePath/normalizePath,
    /// normalisePathWin/normalizePathWin, base64decode…). None for unknown names.
    /// `none` is not a transform: see [`Transform::parse`].
    pub fn from_name(name: &str) -> Option<Transform> {
        match Self::parse(name)? {
            Parsed::None => None,
            Parsed::Transform(t) => Some(t),
        }
    }

    /// `t:` name (without the `t:`) → [`Parsed`]; case-insensitive, as
    /// ModSecurity's parser is; `None` for a name that is neither a
    /// transformation nor `none`.
    pub fn parse(name: &str) -> Option<Parsed> {
        if name.eq_ignore_ascii_case("none") {
            return Some(Parsed::None);
        }
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, t)| Parsed::Transform(t))
    }

    /// The canonical `t:` name, as ModSecurity's documentation spells it.
    pub fn name(self) -> &'static str {
        match NAMES.iter().find(|&&(_, t)| t == self) {
            Some((n, _)) => n,
            None => "",
        }
    }

    /// Whether the output is never longer than the input (true of every
    /// decoder and remover; false of the encoders, `utf8toUnicode`, `length`
    /// and the digests).
    pub fn never_grows(self) -> bool {
        !matches!(
            self,
            Transform::Base64Encode
                | Transform::HexEncode
                | Transform::UrlEncode
                | Transform::Utf8ToUnicode
                | Transform::Length
                | Transform::Md5
                | Transform::Sha1
        )
    }

    /// The [`Features`] whose absence proves this transformation leaves a
    /// value unchanged (0: none does).
    fn acts_on(self) -> u32 {
        use features::*;
        match self {
            Transform::Lowercase => UPPER,
            Transform::Uppercase => LOWER,
            Transform::UrlDecode | Transform::UrlDecodeUni => PERCENT,
            Transform::HtmlEntityDecode => AMP,
            Transform::JsDecode | Transform::CssDecode | Transform::EscapeSeqDecode => BACKSLASH,
            Transform::RemoveNulls | Transform::ReplaceNulls => NUL,
            Transform::Utf8ToUnicode => NON_ASCII | NUL,
            Transform::RemoveWhitespace => SPACE | NON_ASCII,
            Transform::CompressWhitespace
            | Transform::Trim
            | Transform::TrimLeft
            | Transform::TrimRight => SPACE,
            Transform::ReplaceComments => SLASH,
            Transform::RemoveComments => SLASH | LT | HASH | DASH,
            Transform::RemoveCommentsChar => SLASH | STAR | HASH | DASH | LT,
            Transform::NormalisePath => DOT | SLASH,
            Transform::NormalisePathWin => DOT | SLASH | BACKSLASH,
            Transform::CmdLine => UPPER | CMD_PUNCT | BACKSLASH | SPACE,
            Transform::SqlHexDecode => X,
            Transform::ParityZero7bit => NON_ASCII,
            _ => 0,
        }
    }

    /// [`Transform::leaves_unchanged`], answered from the value's features
    /// when they hold none of the bytes the transformation acts on.
    pub fn leaves_unchanged_with(self, features: Features, input: &[u8]) -> bool {
        let acts_on = self.acts_on();
        (acts_on != 0 && features.0 & acts_on == 0) || self.leaves_unchanged(input)
    }

    /// Whether `self.apply(input)` is certainly `input` itself: a cheap scan
    /// for the bytes the transformation acts on, so the usual benign value
    /// goes through a chain without a copy. `false` only means "may change".
    pub fn leaves_unchanged(self, input: &[u8]) -> bool {
        use memchr::{memchr, memchr2, memchr3, memmem};
        let no_space_runs = |allowed_space: u8| {
            input.iter().enumerate().all(|(i, &b)| {
                !is_space(b)
                    || (b == allowed_space && input.get(i + 1).is_none_or(|&n| !is_space(n)))
            })
        };
        match self {
            Transform::Lowercase => !input.iter().any(u8::is_ascii_uppercase),
            Transform::Uppercase => !input.iter().any(u8::is_ascii_lowercase),
            Transform::UrlDecode | Transform::UrlDecodeUni => memchr2(b'%', b'+', input).is_none(),
            Transform::HtmlEntityDecode => memchr(b'&', input).is_none(),
            Transform::JsDecode | Transform::CssDecode | Transform::EscapeSeqDecode => {
                memchr(b'\\', input).is_none()
            }
            Transform::RemoveNulls | Transform::ReplaceNulls => memchr(0, input).is_none(),
            Transform::Utf8ToUnicode => input.is_ascii() && memchr(0, input).is_none(),
            Transform::RemoveWhitespace => {
                !input.iter().any(|&b| is_space(b) || b == 0xa0 || b == 0xc2)
            }
            Transform::CompressWhitespace => no_space_runs(b' '),
            Transform::ReplaceComments => memmem::find(input, b"/*").is_none(),
            Transform::RemoveComments => {
                memchr3(b'/', b'<', b'#', input).is_none() && memmem::find(input, b"--").is_none()
            }
            Transform::RemoveCommentsChar => {
                memchr3(b'/', b'*', b'#', input).is_none() && memmem::find(input, b"--").is_none()
            }
            Transform::NormalisePath => {
                memchr(b'.', input).is_none() && memmem::find(input, b"//").is_none()
            }
            Transform::NormalisePathWin => {
                memchr2(b'.', b'\\', input).is_none() && memmem::find(input, b"//").is_none()
            }
            Transform::CmdLine => input.iter().enumerate().all(|(i, &b)| match b {
                b'"' | b'\'' | b'\\' | b'^' | b',' | b';' | b'\t' | b'\r' | b'\n' => false,
                b' ' => input.get(i + 1).is_none_or(|n| {
                    !matches!(n, b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' | b'/' | b'(')
                }),
                _ => !b.is_ascii_uppercase(),
            }),
            Transform::Trim => {
                input.first().is_none_or(|&b| !is_space(b))
                    && input.last().is_none_or(|&b| !is_space(b))
            }
            Transform::TrimLeft => input.first().is_none_or(|&b| !is_space(b)),
            Transform::TrimRight => input.last().is_none_or(|&b| !is_space(b)),
            Transform::SqlHexDecode => memchr2(b'x', b'X', input).is_none(),
            Transform::ParityZero7bit => input.is_ascii(),
            _ => false,
        }
    }

    /// Writes the transformed `input` into `out` (cleared first). Never panics, for any bytes.
    pub fn apply(self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Transform::Base64Decode => base64_decode(input, out),
            Transform::Base64DecodeExt => base64_decode_ext(input, out),
            Transform::Base64Encode => base64_encode(input, out),
            Transform::CmdLine => cmd_line(input, out),
            Transform::CompressWhitespace => compress_whitespace(input, out),
            Transform::CssDecode => css_decode(input, out),
            Transform::EscapeSeqDecode => escape_seq_decode(input, out),
            Transform::HexDecode => hex_decode(input, out),
            Transform::HexEncode => hex_encode(input, out),
            Transform::HtmlEntityDecode => html_entity_decode(input, out),
            Transform::JsDecode => js_decode(input, out),
            Transform::Length => out.extend_from_slice(input.len().to_string().as_bytes()),
            Transform::Lowercase => out.extend(input.iter().map(u8::to_ascii_lowercase)),
            Transform::Md5 => out.extend_from_slice(&md5(input)),
            Transform::NormalisePath => normalise_path(input, false, out),
            Transform::NormalisePathWin => normalise_path(input, true, out),
            Transform::ParityEven7bit => out.extend(input.iter().map(|&b| parity_7bit(b, true))),
            Transform::ParityOdd7bit => out.extend(input.iter().map(|&b| parity_7bit(b, false))),
            Transform::ParityZero7bit => out.extend(input.iter().map(|&b| b & 0x7f)),
            Transform::RemoveComments => remove_comments(input, out),
            Transform::RemoveCommentsChar => remove_comments_char(input, out),
            Transform::RemoveNulls => out.extend(input.iter().copied().filter(|&b| b != 0)),
            Transform::RemoveWhitespace => out.extend(
                input
                    .iter()
                    .copied()
                    .filter(|&b| !is_space(b) && b != 0xa0 && b != 0xc2),
            ),
            Transform::ReplaceComments => replace_comments(input, out),
            Transform::ReplaceNulls => {
                out.extend(input.iter().map(|&b| if b == 0 { b' ' } else { b }))
            }
            Transform::Sha1 => out.extend_from_slice(&sha1(input)),
            Transform::SqlHexDecode => sql_hex_decode(input, out),
            Transform::Trim => out.extend_from_slice(trim_right(trim_left(input))),
            Transform::TrimLeft => out.extend_from_slice(trim_left(input)),
            Transform::TrimRight => out.extend_from_slice(trim_right(input)),
            Transform::Uppercase => out.extend(input.iter().map(u8::to_ascii_uppercase)),
            Transform::UrlDecode => url_decode(input, out),
            Transform::UrlDecodeUni => url_decode_uni(input, out),
            Transform::UrlEncode => url_encode(input, out),
            Transform::Utf8ToUnicode => utf8_to_unicode(input, out),
        }
    }
}

// ---------------------------------------------------------------------------
// Shared helpers (src/utils/string.h)

/// C `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `VALID_HEX`.
fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// `ISODIGIT`.
fn is_odigit(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

/// `xsingle2c`: one hex digit's value. Like ModSecurity it does not validate:
/// `hexDecode` feeds it any byte, and the arithmetic wraps as C's does.
fn xsingle2c(b: u8) -> u8 {
    if b >= b'A' {
        ((b & 0xdf).wrapping_sub(b'A')).wrapping_add(10)
    } else {
        b.wrapping_sub(b'0')
    }
}

/// `x2c`: two hex digits' value (unvalidated, wrapping).
fn x2c(hi: u8, lo: u8) -> u8 {
    xsingle2c(hi).wrapping_mul(16).wrapping_add(xsingle2c(lo))
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// `c2x`: a byte as two lowercase hex digits.
fn push_hex(out: &mut Vec<u8>, b: u8) {
    out.push(HEX_LOWER[usize::from(b >> 4)]);
    out.push(HEX_LOWER[usize::from(b & 0x0f)]);
}

/// The value `strtol(digits, NULL, radix)` gives, cast to `unsigned char`:
/// the low byte, or 0xFF when the value saturates at `LONG_MAX` (64-bit).
fn strtol_low_byte(digits: &[u8], radix: u32) -> u8 {
    let mut acc: u64 = 0;
    for &d in digits {
        let v = match (d as char).to_digit(radix) {
            Some(v) => u64::from(v),
            None => break,
        };
        acc = match acc
            .checked_mul(u64::from(radix))
            .and_then(|a| a.checked_add(v))
        {
            Some(a) if a <= i64::MAX as u64 => a,
            _ => return 0xff,
        };
    }
    acc as u8
}

// ---------------------------------------------------------------------------
// URL decoding (src/utils/decode.cc, url_decode_uni.cc)

/// `urlDecode` (`urldecode_nonstrict_inplace`): `%HH` → byte, `+` → space; a
/// `%` not followed by two hex digits is copied and scanning resumes right
/// after it.
fn url_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        match input[i] {
            b'%' if i + 2 < n && is_hex(input[i + 1]) && is_hex(input[i + 2]) => {
                out.push(x2c(input[i + 1], input[i + 2]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// `urlDecodeUni`. `%uHHHH` (either case of `u`) without a unicode map: the
/// low byte, plus 0x20 when the code is U+FF01–U+FF5E (full-width ASCII). An
/// invalid or truncated `%u` copies both `%` and `u`.
///
/// v3 differs from v2 here: v2 (and v3 before 3.0.13) put `x` for a code
/// point with no mapping, v3 keeps the low byte.
fn url_decode_uni(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        let b = input[i];
        if b == b'%' {
            if i + 1 < n && (input[i + 1] == b'u' || input[i + 1] == b'U') {
                if i + 5 < n && input[i + 2..i + 6].iter().all(|&h| is_hex(h)) {
                    out.push(fold_unicode_low_byte(&input[i + 2..i + 6]));
                    i += 6;
                } else {
                    out.extend_from_slice(&input[i..i + 2]);
                    i += 2;
                }
            } else if i + 2 < n && is_hex(input[i + 1]) && is_hex(input[i + 2]) {
                out.push(x2c(input[i + 1], input[i + 2]));
                i += 3;
            } else {
                out.push(b'%');
                i += 1;
            }
        } else {
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
}

/// The byte ModSecurity keeps of a 4-hex-digit code point (`HHHH`, already
/// validated): the low byte, plus 0x20 for U+FF01–U+FF5E.
fn fold_unicode_low_byte(h: &[u8]) -> u8 {
    let low = x2c(h[2], h[3]);
    let full_width = (h[0] == b'f' || h[0] == b'F') && (h[1] == b'f' || h[1] == b'F');
    if full_width && low > 0x00 && low < 0x5f {
        low + 0x20
    } else {
        low
    }
}

/// `urlEncode`: space → `+`; `*`, digits and ASCII letters kept; everything
/// else → `%hh` (lowercase hex).
fn url_encode(input: &[u8], out: &mut Vec<u8>) {
    for &c in input {
        if c == b' ' {
            out.push(b'+');
        } else if c == b'*' || c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push(b'%');
            push_hex(out, c);
        }
    }
}

// ---------------------------------------------------------------------------
// HTML, JavaScript, CSS and C escapes

/// The named entities `htmlEntityDecode` knows: those that map into ASCII
/// (plus `nbsp` → 0xA0), matched case-insensitively on the whole name.
///
/// v3 after GHSA-cxqf-vgrr-xxrv; before it (and in v2) only `quot`, `amp`,
/// `lt`, `gt` and `nbsp` were known, and v3 matched them as prefixes
/// (`&ltest;` → `<`).
const NAMED_ENTITIES: &[(&[u8], u8)] = &[
    (b"amp", b'&'),
    (b"apos", b'\''),
    (b"ast", b'*'),
    (b"bsol", b'\\'),
    (b"caret", b'^'),
    (b"colon", b':'),
    (b"comma", b','),
    (b"commat", b'@'),
    (b"dollar", b'$'),
    (b"equals", b'='),
    (b"grave", b'`'),
    (b"gt", b'>'),
    (b"hyphen", b'-'),
    (b"lbrace", b'{'),
    (b"lbrack", b'['),
    (b"lowbar", b'_'),
    (b"lpar", b'('),
    (b"lt", b'<'),
    (b"nbsp", 0xa0),
    (b"num", b'#'),
    (b"percnt", b'%'),
    (b"period", b'.'),
    (b"plus", b'+'),
    (b"quest", b'?'),
    (b"quot", b'"'),
    (b"rbrace", b'}'),
    (b"rbrack", b']'),
    (b"rpar", b')'),
    (b"semi", b';'),
    (b"sol", b'/'),
    (b"tilde", b'~'),
    (b"verbar", b'|'),
];

/// `htmlEntityDecode`: `&#DDD` and `&#xHHH` (`X` too) with any number of
/// digits, keeping the low byte of the value (`strtol` saturates, so an
/// overlong number gives 0xFF); named entities from [`NAMED_ENTITIES`]. The
/// closing `;` is optional and consumed when present. Anything else (unknown
/// name, `&#` without digits) is copied as written.
fn html_entity_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        let mut copy = 1;
        if input[i] == b'&' && i + 1 < n {
            let mut j = i + 1;
            if input[j] == b'#' {
                copy += 1;
                if j + 1 < n {
                    j += 1;
                    let (radix, start) = if input[j] == b'x' || input[j] == b'X' {
                        copy += 1;
                        (16, j + 1)
                    } else {
                        (10, j)
                    };
                    // For hex, `&#x` must be followed by at least one byte.
                    if radix == 10 || start < n {
                        let mut k = start;
                        while k < n
                            && (if radix == 16 {
                                is_hex(input[k])
                            } else {
                                input[k].is_ascii_digit()
                            })
                        {
                            k += 1;
                        }
                        if k > start {
                            out.push(strtol_low_byte(&input[start..k], radix));
                            i = if k < n && input[k] == b';' { k + 1 } else { k };
                            continue;
                        }
                    }
                }
            } else {
                let k = j;
                while j < n && input[j].is_ascii_alphanumeric() {
                    j += 1;
                }
                if j > k {
                    let name = &input[k..j];
                    match NAMED_ENTITIES
                        .iter()
                        .find(|(e, _)| e.eq_ignore_ascii_case(name))
                    {
                        Some(&(_, ch)) => {
                            out.push(ch);
                            i = if j < n && input[j] == b';' { j + 1 } else { j };
                            continue;
                        }
                        None => copy = j - k + 1,
                    }
                }
            }
        }
        let end = (i + copy).min(n);
        out.extend_from_slice(&input[i..end]);
        i = end;
    }
}

/// `jsDecode`: `\uHHHH` (lowercase `u`; low byte, full-width ASCII folded),
/// `\xHH` (lowercase `x`), `\OOO` (at most three octal digits and at most
/// `\377`: `\666` is `\66` then `6`), `\a \b \f \n \r \t \v`, and `\c` → `c`
/// for any other byte. A trailing lone `\` is kept.
fn js_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        if i + 5 < n && input[i + 1] == b'u' && input[i + 2..i + 6].iter().all(|&h| is_hex(h)) {
            out.push(fold_unicode_low_byte(&input[i + 2..i + 6]));
            i += 6;
        } else if i + 3 < n && input[i + 1] == b'x' && is_hex(input[i + 2]) && is_hex(input[i + 3])
        {
            out.push(x2c(input[i + 2], input[i + 3]));
            i += 4;
        } else if i + 1 < n && is_odigit(input[i + 1]) {
            let mut j = 0;
            while i + 1 + j < n && j < 3 {
                j += 1;
                if !input.get(i + 1 + j).is_some_and(|&b| is_odigit(b)) {
                    break;
                }
            }
            if j == 3 && input[i + 1] > b'3' {
                j = 2;
            }
            out.push(strtol_low_byte(&input[i + 1..i + 1 + j], 8));
            i += 1 + j;
        } else if i + 1 < n {
            out.push(match input[i + 1] {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                c => c,
            });
            i += 2;
        } else {
            out.push(b'\\');
            i += 1;
        }
    }
}

/// `escapeSeqDecode`: ANSI C escapes: `\a \b \f \n \r \t \v \\ \? \' \"`,
/// `\xHH` (either case of `x`), `\O`…`\OOO` (up to three octal digits, the
/// value truncated to a byte: `\666` → 0xB6). An unrecognised `\c` → `c`; a
/// trailing lone `\` is kept.
fn escape_seq_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] != b'\\' || i + 1 >= n {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let simple = match input[i + 1] {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'?' => Some(b'?'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        let next = input[i + 1];
        if (next == b'x' || next == b'X')
            && i + 3 < n
            && is_hex(input[i + 2])
            && is_hex(input[i + 3])
        {
            out.push(x2c(input[i + 2], input[i + 3]));
            i += 4;
        } else if is_odigit(next) {
            let mut j = 0;
            while i + 1 + j < n && j < 3 {
                j += 1;
                if !input.get(i + 1 + j).is_some_and(|&b| is_odigit(b)) {
                    break;
                }
            }
            // strtol of at most three octal digits fits; `*d++ = c` keeps the low byte.
            out.push(strtol_low_byte(&input[i + 1..i + 1 + j], 8));
            i += 1 + j;
        } else {
            out.push(next);
            i += 2;
        }
    }
}

/// `cssDecode` (CSS 2.1 §4.1.3): `\` + 1–6 hex digits → the last two digits'
/// byte (one digit: its value), with the full-width ASCII fold for
/// `\FFxx`, `\0FFxx` and `\00FFxx`; one whitespace after a hex escape is
/// swallowed; `\` + newline is dropped; `\c` → `c`; a trailing `\` is dropped.
fn css_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        if i + 1 >= n {
            // Backslash at the end: continuation to nothing.
            i += 1;
            continue;
        }
        i += 1;
        let mut j = 0;
        while j < 6 && i + j < n && is_hex(input[i + j]) {
            j += 1;
        }
        if j > 0 {
            let last = x2c_or_single(&input[i..i + j]);
            let fullcheck = match j {
                4 => true,
                5 => input[i] == b'0',
                6 => input[i] == b'0' && input[i + 1] == b'0',
                _ => false,
            };
            let is_f = |b: u8| b == b'f' || b == b'F';
            if fullcheck
                && last > 0x00
                && last < 0x5f
                && is_f(input[i + j - 3])
                && is_f(input[i + j - 4])
            {
                out.push(last + 0x20);
            } else {
                out.push(last);
            }
            if i + j < n && is_space(input[i + j]) {
                j += 1;
            }
            i += j;
        } else if input[i] == b'\n' {
            i += 1;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
}

/// The byte of a CSS hex escape's digits (1–6, validated): one digit's
/// value, or the last two digits' byte.
fn x2c_or_single(digits: &[u8]) -> u8 {
    match digits.len() {
        0 => 0,
        1 => xsingle2c(digits[0]),
        n => x2c(digits[n - 2], digits[n - 1]),
    }
}

// ---------------------------------------------------------------------------
// Hex and Base64

/// `hexDecode`: every pair of bytes → `x2c` of the pair, without validating
/// the digits (`0z` → 0x23, as ModSecurity); an odd trailing byte is dropped.
fn hex_decode(input: &[u8], out: &mut Vec<u8>) {
    out.extend(input.chunks_exact(2).map(|p| x2c(p[0], p[1])));
}

/// `hexEncode`: lowercase hex.
fn hex_encode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len() * 2);
    for &b in input {
        push_hex(out, b);
    }
}

/// `sqlHexDecode`: `0x` (either case of `x`) followed by at least one pair of
/// hex digits → the bytes of the pairs; everything else is copied. A `0x`
/// without a hex pair after it is kept as written.
fn sql_hex_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if i + 3 < n
            && input[i] == b'0'
            && (input[i + 1] == b'x' || input[i + 1] == b'X')
            && is_hex(input[i + 2])
            && is_hex(input[i + 3])
        {
            i += 2;
            loop {
                out.push(x2c(input[i], input[i + 1]));
                i += 2;
                if !(i + 1 < n && is_hex(input[i]) && is_hex(input[i + 1])) {
                    break;
                }
            }
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The standard alphabet's value of `c`.
fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `base64Encode` (`mbedtls_base64_encode`): standard alphabet, `=` padding.
fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        out.push(BASE64_ALPHABET[usize::from(b0 >> 2)]);
        out.push(BASE64_ALPHABET[usize::from(((b0 & 0x03) << 4) | (b1 >> 4))]);
        out.push(if chunk.len() > 1 {
            BASE64_ALPHABET[usize::from(((b1 & 0x0f) << 2) | (b2 >> 6))]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            BASE64_ALPHABET[usize::from(b2 & 0x3f)]
        } else {
            b'='
        });
    }
}

/// `base64Decode`: the input up to its first NUL (v3 hands `strlen` bytes
/// to mbedtls) decoded by `mbedtls_base64_decode` (mbedtls 3.6 rules): spaces
/// are allowed only before a line end or at the end, `\n` and `\r\n` are
/// skipped, at most two `=` and only at the end, and the count of digits and
/// `=` together must be a multiple of four. Invalid input gives an empty value.
///
/// v2 used APR's `apr_base64_decode`, which never fails: it stops at the
/// first byte outside the alphabet and decodes what came before.
fn base64_decode(input: &[u8], out: &mut Vec<u8>) {
    let src = match input.iter().position(|&b| b == 0) {
        Some(p) => &input[..p],
        None => input,
    };
    let slen = src.len();
    // First pass: validate and count, as mbedtls does.
    let mut n = 0usize;
    let mut equals = 0usize;
    let mut i = 0;
    while i < slen {
        let mut spaces = false;
        while i < slen && src[i] == b' ' {
            i += 1;
            spaces = true;
        }
        if i == slen {
            break;
        }
        if (slen - i >= 2 && src[i] == b'\r' && src[i + 1] == b'\n') || src[i] == b'\n' {
            i += 1;
            continue;
        }
        if spaces {
            return;
        }
        if src[i] == b'=' {
            equals += 1;
            if equals > 2 {
                return;
            }
        } else if equals != 0 || base64_value(src[i]).is_none() {
            return;
        }
        n += 1;
        i += 1;
    }
    if n == 0 || (n - equals) % 4 == 1 || n % 4 != 0 {
        return;
    }
    // Second pass: decode.
    let mut acc: u32 = 0;
    let mut digits = 0;
    let mut seen_equals = 0;
    for &c in src {
        if c == b'\r' || c == b'\n' || c == b' ' {
            continue;
        }
        acc <<= 6;
        if c == b'=' {
            seen_equals += 1;
        } else {
            acc |= u32::from(base64_value(c).unwrap_or(0));
        }
        digits += 1;
        if digits == 4 {
            digits = 0;
            out.push((acc >> 16) as u8);
            if seen_equals <= 1 {
                out.push((acc >> 8) as u8);
            }
            if seen_equals == 0 {
                out.push(acc as u8);
            }
        }
    }
}

/// `base64DecodeExt` (`Base64::decode_forgiven_engine`): bytes outside the
/// alphabet are skipped (whitespace, `.`, any non-ASCII byte); `-` and `_`
/// count as `+` and `/` (URL-safe alphabet); `=` is skipped too, except that
/// an `=` not followed by another `=` right after the first digit of a group
/// (one leftover digit, as in `dzBzV==YWxl`) empties the whole value. A
/// trailing partial group contributes its complete bytes.
///
/// Quirk kept from ModSecurity: after the loop it tests whether the last
/// byte's *table value* equals `'='` (61), so a value ending in the digit
/// `9` (value 61) right after a complete group, like a final `=` there,
/// also empties the value.
fn base64_decode_ext(input: &[u8], out: &mut Vec<u8>) {
    fn value(c: u8) -> Option<u8> {
        match c {
            b'-' => Some(62),
            b'_' => Some(63),
            _ => base64_value(c),
        }
    }
    let n = input.len();
    let mut count = 0usize; // `i` in the C code: digits seen
    let mut last_is_61 = false; // the C code's `ch == b64_pad` after the loop
    let mut cur: u8 = 0;
    for (idx, &c) in input.iter().enumerate() {
        if c == b'=' {
            last_is_61 = true;
            // `*encoded` is the next byte, or the string's terminating NUL.
            let next = if idx + 1 < n { input[idx + 1] } else { 0 };
            if next != b'=' && count % 4 == 1 {
                out.clear();
                return;
            }
            continue;
        }
        let Some(v) = value(c) else {
            last_is_61 = false;
            continue;
        };
        last_is_61 = v == b'=';
        match count % 4 {
            0 => cur = v << 2,
            1 => {
                out.push(cur | (v >> 4));
                cur = (v & 0x0f) << 4;
            }
            2 => {
                out.push(cur | (v >> 2));
                cur = (v & 0x03) << 6;
            }
            _ => out.push(cur | v),
        }
        count += 1;
    }
    if last_is_61 && count % 4 == 1 {
        out.clear();
    }
}

// ---------------------------------------------------------------------------
// Whitespace, comments, command lines

/// `compressWhitespace`: each run of whitespace → one space.
///
/// v2 also counts the byte 0xA0 (NBSP) as whitespace; v3 does not.
fn compress_whitespace(input: &[u8], out: &mut Vec<u8>) {
    let mut in_space = false;
    for &b in input {
        if is_space(b) {
            if !in_space {
                out.push(b' ');
                in_space = true;
            }
        } else {
            in_space = false;
            out.push(b);
        }
    }
}

fn trim_left(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    &s[start..]
}

fn trim_right(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_space(b)).map_or(0, |p| p + 1);
    &s[..end]
}

/// `cmdLine`: deletes `"`, `'`, `\` and `^`; turns each run of space, `,`,
/// `;`, `\t`, `\r` and `\n` into one space; deletes a space before `/` or
/// `(`; lowercases ASCII.
fn cmd_line(input: &[u8], out: &mut Vec<u8>) {
    let mut space = false;
    for &a in input {
        match a {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(a);
            }
            _ => {
                out.push(a.to_ascii_lowercase());
                space = false;
            }
        }
    }
}

/// `replaceComments`: `/* … */` → one space; an unterminated `/*` drops the
/// rest of the value and leaves one space. A lone `*/` is kept.
fn replace_comments(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    let mut in_comment = false;
    while i < n {
        if !in_comment {
            if input[i] == b'/' && i + 1 < n && input[i + 1] == b'*' {
                in_comment = true;
                i += 2;
            } else {
                out.push(input[i]);
                i += 1;
            }
        } else if input[i] == b'*' && i + 1 < n && input[i + 1] == b'/' {
            in_comment = false;
            i += 2;
            out.push(b' ');
        } else {
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
}

/// `removeComments`: `/* … */` and `<!-- … -->` are dropped (an unterminated
/// one drops the rest and leaves one space); outside a comment, `--` or `#`
/// ends the value (they and everything after are dropped).
///
/// Older v3 (and v2) copied the byte right after a comment's end without
/// looking at it, so `/**//**/` left `/**/` behind and a comment at the very
/// end left a NUL; the current regression data (`SELECT/**//**/UNION` →
/// `SELECTUNION`) wants it looked at like any other byte, which is done here.
fn remove_comments(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let at = |i: usize, pat: &[u8]| input.get(i..i + pat.len()) == Some(pat);
    let mut i = 0;
    let mut in_comment = false;
    while i < n {
        if !in_comment {
            if at(i, b"/*") {
                in_comment = true;
                i += 2;
            } else if at(i, b"<!--") {
                in_comment = true;
                i += 4;
            } else if at(i, b"--") || input[i] == b'#' {
                break;
            } else {
                out.push(input[i]);
                i += 1;
            }
        } else if at(i, b"*/") {
            in_comment = false;
            i += 2;
        } else if at(i, b"-->") {
            in_comment = false;
            i += 3;
        } else {
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
}

/// `removeCommentsChar`: deletes the markers `/*`, `*/`, `<!--`, `-->`, `--`
/// and `#` wherever they are, keeping what is between them.
fn remove_comments_char(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let at = |i: usize, pat: &[u8]| input.get(i..i + pat.len()) == Some(pat);
    let mut i = 0;
    while i < n {
        if at(i, b"/*") || at(i, b"*/") {
            i += 2;
        } else if at(i, b"<!--") {
            i += 4;
        } else if at(i, b"-->") {
            i += 3;
        } else if at(i, b"--") {
            i += 2;
        } else if input[i] == b'#' {
            i += 1;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Paths

/// `normalisePath` / `normalisePathWin` (`normalize_path_inplace`): removes
/// empty segments and `.` segments and resolves `..` against the previous
/// segment, never above the root; a relative path keeps the `..` it cannot
/// resolve. A trailing slash is kept only if the input had one. With `win`,
/// each `\` is first turned into `/` (as the scan reaches it).
///
/// This is a faithful port of ModSecurity's pointer walk, quirks included
/// (for example a third consecutive `\` in a Windows path is skipped over
/// before it is converted, so it is copied as `\`).
fn normalise_path(input: &[u8], win: bool, out: &mut Vec<u8>) {
    if input.is_empty() {
        return;
    }
    let mut buf = input.to_vec();
    let is_sep = |b: u8| b == b'/' || (win && b == b'\\');
    let end = buf.len() - 1;
    let relative = !is_sep(buf[0]);
    let trailing = is_sep(buf[end]);
    let (mut src, mut dst) = (0usize, 0usize);
    let mut hitroot = false;
    let mut done = false;

    while !done && src <= end && dst <= end {
        if win {
            if buf[src] == b'\\' {
                buf[src] = b'/';
            }
            if src < end && buf[src + 1] == b'\\' {
                buf[src + 1] = b'/';
            }
        }

        // `skip_copy` is the C code's `goto skip_copy`; falling out of the
        // normalisation block is its `goto copy` (or plain fall-through).
        let mut skip_copy = false;
        let normalise = if src == end {
            done = true;
            true
        } else {
            buf[src + 1] == b'/'
        };

        if normalise {
            if src != end && buf[src] == b'/' {
                // Empty path segment: the copy below skips repeated slashes.
            } else if buf[src] == b'.' {
                if dst > 0 && buf[dst - 1] == b'.' {
                    // Back-reference.
                    if relative && (hitroot || dst <= 2) {
                        hitroot = true;
                    } else {
                        let mut d = dst as isize - 3;
                        while d > 0 && buf[d as usize] != b'/' {
                            d -= 1;
                        }
                        if d <= 0 {
                            hitroot = true;
                            dst = 0;
                            if !relative && src == end {
                                dst = 1;
                            }
                        } else {
                            dst = d as usize;
                        }
                        if done {
                            skip_copy = true;
                        } else {
                            src += 1;
                        }
                    }
                } else if dst == 0 {
                    // Relative self-reference.
                    if done {
                        skip_copy = true;
                    } else {
                        src += 1;
                    }
                } else if buf[dst - 1] == b'/' {
                    // Self-reference.
                    if done {
                        skip_copy = true;
                    } else {
                        dst -= 1;
                        src += 1;
                    }
                }
            } else if dst > 0 {
                hitroot = false;
            }
        }

        if !skip_copy {
            if buf[src] == b'/' {
                while src < end && is_sep(buf[src + 1]) {
                    src += 1;
                }
                if relative && dst == 0 {
                    src += 1;
                    continue;
                }
            }
            buf[dst] = buf[src];
            dst += 1;
            src += 1;
        }
    }

    if !trailing && dst > 0 && buf[dst - 1] == b'/' {
        dst -= 1;
    }
    out.extend_from_slice(&buf[..dst]);
}

// ---------------------------------------------------------------------------
// utf8toUnicode

/// `utf8toUnicode`: each well-formed 2-, 3- or 4-byte UTF-8 sequence →
/// `%u` + the code point in lowercase hex, at least four digits (`%u00e9`,
/// `%uff1c`, `%u1f600`). ASCII is copied. The rest follows ModSecurity's
/// checks exactly:
///
/// - a lead byte whose continuation bytes are missing or wrong is dropped
///   (and scanning resumes at the next byte);
/// - a byte that cannot start a sequence (0x80–0xBF, 0xF8–0xFF) is copied;
/// - 0xF5–0xF7 are copied and then decoded as 4-byte leads all the same;
/// - after a surrogate (U+D800–U+DFFF) or an overlong form, the lead byte is
///   copied again after the `%u` text;
/// - a NUL byte is dropped unless it is the last byte (v3 writes it without
///   advancing its output pointer).
fn utf8_to_unicode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    // Bytes past the end read as the string's terminating NUL, which is never
    // a continuation byte, so the checks stop there.
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    let cont = |k: usize| at(k) & 0xc0 == 0x80;
    let mut i = 0;
    while i < n {
        let c = input[i];
        let mut len = 0usize;
        let mut d: u32 = 0;
        if c & 0x80 == 0 {
            if c != 0 || i + 1 >= n {
                out.push(c);
            }
        } else if c & 0xe0 == 0xc0 {
            if n >= 2 && cont(i + 1) {
                len = 2;
                d = (u32::from(c & 0x1f) << 6) | u32::from(at(i + 1) & 0x3f);
            }
        } else if c & 0xf0 == 0xe0 {
            if n >= 3 && cont(i + 1) && cont(i + 2) {
                len = 3;
                d = (u32::from(c & 0x0f) << 12)
                    | (u32::from(at(i + 1) & 0x3f) << 6)
                    | u32::from(at(i + 2) & 0x3f);
            }
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                out.push(c);
            }
            if n >= 4 && cont(i + 1) && cont(i + 2) && cont(i + 3) {
                len = 4;
                d = (u32::from(c & 0x07) << 18)
                    | (u32::from(at(i + 1) & 0x3f) << 12)
                    | (u32::from(at(i + 2) & 0x3f) << 6)
                    | u32::from(at(i + 3) & 0x3f);
            }
        } else {
            out.push(c);
        }
        if len > 0 {
            out.extend_from_slice(format!("%u{d:04x}").as_bytes());
        }
        if (0xd800..=0xdfff).contains(&d) {
            out.push(c);
        }
        if (len == 4 && d < 0x1_0000) || (len == 3 && d < 0x800) || (len == 2 && d < 0x80) {
            out.push(c);
        }
        i += len.max(1);
    }
}

// ---------------------------------------------------------------------------
// Parity and digests

/// `parityEven7bit` / `parityOdd7bit`. As in ModSecurity (v2 and v3) the
/// parity is computed over the whole byte, bit 7 included, before bit 7 is
/// set or cleared: even → `x | 0x80` when the byte's parity is odd, else
/// `x & 0x7f`; odd is the reverse.
fn parity_7bit(x: u8, even: bool) -> u8 {
    let odd_ones = x.count_ones() % 2 == 1;
    if odd_ones == even {
        x | 0x80
    } else {
        x & 0x7f
    }
}

/// MD5 (RFC 1321).
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for block in padded_blocks(input, false).chunks_exact(64) {
        let m: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut digest = [0u8; 16];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    digest
}

/// SHA-1 (FIPS 180-4).
fn sha1(input: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    let mut w = [0u32; 80];
    for block in padded_blocks(input, true).chunks_exact(64) {
        for (t, word) in block.chunks_exact(4).enumerate() {
            w[t] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, &wt) in w.iter().enumerate() {
            let (f, k) = match t / 20 {
                0 => ((b & c) | (!b & d), 0x5a827999),
                1 => (b ^ c ^ d, 0x6ed9eba1),
                2 => ((b & c) | (b & d) | (c & d), 0x8f1bbcdc),
                _ => (b ^ c ^ d, 0xca62c1d6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut digest = [0u8; 20];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// The Merkle–Damgård padding MD5 and SHA-1 share: `0x80`, zeros, then the
/// bit length as 64 bits (big-endian for SHA-1, little-endian for MD5).
fn padded_blocks(input: &[u8], big_endian: bool) -> Vec<u8> {
    let bit_len = (input.len() as u64).wrapping_mul(8);
    let mut data = Vec::with_capacity(input.len() + 72);
    data.extend_from_slice(input);
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&if big_endian {
        bit_len.to_be_bytes()
    } else {
        bit_len.to_le_bytes()
    });
    data
}

/// Which kinds of bytes a value holds, found in one pass: enough to know,
/// for most values and most transformations, that the transformation has
/// nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features(u32);

mod features {
    pub const UPPER: u32 = 1;
    pub const LOWER: u32 = 1 << 1;
    pub const PERCENT: u32 = 1 << 2; // % and +
    pub const AMP: u32 = 1 << 3;
    pub const BACKSLASH: u32 = 1 << 4;
    pub const NUL: u32 = 1 << 5;
    pub const NON_ASCII: u32 = 1 << 6;
    pub const SPACE: u32 = 1 << 7; // C isspace
    pub const SLASH: u32 = 1 << 8;
    pub const STAR: u32 = 1 << 9;
    pub const HASH: u32 = 1 << 10;
    pub const DASH: u32 = 1 << 11;
    pub const LT: u32 = 1 << 12;
    pub const DOT: u32 = 1 << 13;
    pub const CMD_PUNCT: u32 = 1 << 14; // " ' ^ , ;
    pub const X: u32 = 1 << 15; // x and X

    pub const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = match c {
                b'A'..=b'Z' => UPPER | if c == b'X' { X } else { 0 },
                b'a'..=b'z' => LOWER | if c == b'x' { X } else { 0 },
                b'%' | b'+' => PERCENT,
                b'&' => AMP,
                b'\\' => BACKSLASH,
                0 => NUL,
                0x80..=0xff => NON_ASCII,
                b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => SPACE,
                b'/' => SLASH,
                b'*' => STAR,
                b'#' => HASH,
                b'-' => DASH,
                b'<' => LT,
                b'.' => DOT,
                b'"' | b'\'' | b'^' | b',' | b';' => CMD_PUNCT,
                _ => 0,
            };
            b += 1;
        }
        t
    };
}

impl Features {
    pub fn of(value: &[u8]) -> Features {
        Features(
            value
                .iter()
                .fold(0, |f, &b| f | features::TABLE[usize::from(b)]),
        )
    }
}

#[cfg(test)]
mod tests;
