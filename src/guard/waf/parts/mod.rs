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

mod form;
mod json;
mod multipart;
#[cfg(test)]
mod tests;

pub(in crate::guard::waf) use form::decode_once;
use form::*;
pub use form::{cookie_parts, query_parts};
use json::*;
pub use json::{json_part_names, JsonText};
use multipart::*;
pub(in crate::guard::waf) use multipart::{boundary, for_each_field};

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

/// A Content-Type's media type (trimmed) and its parameters (after the `;`).
pub(in crate::guard::waf) fn media_type(content_type: Option<&[u8]>) -> (&[u8], &[u8]) {
    let ct = content_type.unwrap_or_default();
    match memchr(b';', ct) {
        Some(p) => (
            ct.get(..p).unwrap_or_default().trim_ascii(),
            ct.get(p + 1..).unwrap_or_default(),
        ),
        None => (ct.trim_ascii(), &b""[..]),
    }
}

pub(in crate::guard::waf) fn is_json(media: &[u8]) -> bool {
    media.eq_ignore_ascii_case(b"application/json") || ends_with_ignore_case(media, b"+json")
}
