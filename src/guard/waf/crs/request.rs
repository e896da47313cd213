//! The request as SecLang sees it: ModSecurity's request collections (`ARGS`,
//! `REQUEST_HEADERS`, `REQUEST_COOKIES`, `FILES`, `XML`, …) built from the
//! gateway's parsed head and buffered body.
//!
//! As libmodsecurity v3 with its recommended configuration: query and
//! `application/x-www-form-urlencoded` arguments are split on `&` and `=` and
//! URL-decoded (`+` is a space); cookies are split on `;` and not decoded; the
//! body processor is chosen by Content-Type as ModSecurity and its recommended
//! rules 200000/200001 choose it (URLENCODED and MULTIPART by prefix, JSON for
//! `application/json…`, XML for a type containing `text/xml`, `application/xml`
//! or `application/soap+xml`); JSON leaves become `ARGS_POST` named by their key path
//! (`json.a.b`, array items by index: `json.a.0`); multipart file fields give
//! `FILES` (file names) and `FILES_NAMES` (field names), the others
//! `ARGS_POST`; `XML:/*` is the document's text. `REQUEST_URI` is the target
//! with its valid `%XX` escapes decoded (not `+`), `REQUEST_FILENAME` that up
//! to its first `?`, `REQUEST_URI_RAW` and `QUERY_STRING` as sent.

use std::borrow::Cow;

use crate::guard::waf::parts::{self, decode_once};

/// Arguments and cookies kept per request, at most (ModSecurity has no bound;
/// an edge proxy needs one: the rest are not inspected by CRS rules, but a
/// request over it is flagged as a body error).
pub const MAX_ARGS: usize = 1024;
/// JSON nesting followed, at most; deeper values are named by their ancestor.
const JSON_DEPTH: usize = 64;

/// A name and a value, borrowed where no decoding was needed.
pub type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// One request's collections.
#[derive(Debug, Default)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// The request target as sent (`REQUEST_URI_RAW`).
    pub uri_raw: &'a [u8],
    /// The target with its valid `%XX` escapes decoded (`REQUEST_URI`).
    pub uri: Cow<'a, [u8]>,
    pub protocol: &'a [u8],
    /// The request line as sent, without its line break.
    pub line: &'a [u8],
    /// The path, URL-decoded (`REQUEST_FILENAME`).
    pub filename: Cow<'a, [u8]>,
    pub query: &'a [u8],
    /// Headers as sent, in order.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    pub cookies: Vec<Pair<'a>>,
    pub args_get: Vec<Pair<'a>>,
    pub args_post: Vec<Pair<'a>>,
    /// Multipart file fields: (field name, file name, content length).
    pub files: Vec<(&'a [u8], &'a [u8], usize)>,
    /// Multipart part header lines: (field name, line).
    pub part_headers: Vec<(&'a [u8], &'a [u8])>,
    /// `XML:/*`: the XML body's text, one value.
    pub xml: Option<Vec<u8>>,
    pub body: &'a [u8],
    /// `REQBODY_PROCESSOR`.
    pub processor: &'static str,
    /// `REQBODY_ERROR` (1 when the body did not parse as its processor expects).
    pub body_error: bool,
    pub remote_addr: String,
    pub unique_id: &'a [u8],
}

impl<'a> Request<'a> {
    /// Builds the collections. `head`: the request head (request line first:
    /// method, target and protocol are read from it);
    /// `headers`: (name, value) as sent; `body`: what was buffered.
    pub fn new(
        head: &'a [u8],
        headers: Vec<(&'a [u8], &'a [u8])>,
        body: Option<&'a [u8]>,
        remote_addr: String,
        unique_id: &'a [u8],
    ) -> Request<'a> {
        let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
        let line = head[..line_end]
            .strip_suffix(b"\r")
            .unwrap_or(&head[..line_end]);
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let method = words.next().unwrap_or_default();
        let target = words.next().unwrap_or_default();
        let protocol = words.next().unwrap_or_default();
        let query = match memchr::memchr(b'?', target) {
            Some(q) => &target[q + 1..],
            None => &b""[..],
        };
        // As libmodsecurity v3: the filename is the decoded target up to its
        // first `?` (a decoded `%3F` ends it too).
        let uri = percent_decode(target);
        let filename = match memchr::memchr(b'?', &uri) {
            Some(q) => Cow::Owned(uri[..q].to_vec()),
            None => uri.clone(),
        };
        let mut r = Request {
            method,
            uri_raw: target,
            uri,
            protocol,
            line,
            filename,
            query,
            headers,
            remote_addr,
            unique_id,
            ..Request::default()
        };
        split_pairs(query, b'&', true, &mut r.args_get);
        let cookie_headers: Vec<&[u8]> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
            .map(|(_, v)| *v)
            .collect();
        for c in cookie_headers {
            split_pairs(c, b';', false, &mut r.cookies);
        }
        if let Some(body) = body {
            r.body = body;
            r.process_body();
        }
        r
    }

    /// The last Content-Type sent.
    fn content_type(&self) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-type"))
            .map(|(_, v)| *v)
    }

    fn process_body(&mut self) {
        let body = self.body;
        if body.is_empty() {
            return;
        }
        // The body processor: as ModSecurity's own Content-Type checks plus the
        // recommended configuration's rules 200000 (XML) and 200001 (JSON).
        let content_type = self.content_type().unwrap_or_default().to_ascii_lowercase();
        let (_, params) = parts::media_type(self.content_type());
        let xml = ["application/xml", "application/soap+xml", "text/xml"]
            .iter()
            .any(|m| memchr::memmem::find(&content_type, m.as_bytes()).is_some());
        if content_type.starts_with(b"application/x-www-form-urlencoded") {
            self.processor = "URLENCODED";
            split_pairs(body, b'&', true, &mut self.args_post);
        } else if content_type.starts_with(b"multipart/form-data") {
            self.processor = "MULTIPART";
            let Some(boundary) = parts::boundary(params) else {
                self.body_error = true;
                return;
            };
            let (args, files, part_headers) =
                (&mut self.args_post, &mut self.files, &mut self.part_headers);
            let any = parts::for_each_field(boundary, body, |f| {
                for line in f.headers.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.is_empty() {
                        part_headers.push((f.name, line));
                    }
                }
                match f.files.iter().flatten().next() {
                    Some(file) => files.push((f.name, file, f.content.len())),
                    None => args.push((Cow::Borrowed(f.name), Cow::Borrowed(f.content))),
                }
                args.len() + files.len() < MAX_ARGS
            });
            self.body_error = !any;
        } else if content_type.starts_with(b"application/json") {
            self.processor = "JSON";
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(v) => {
                    let mut name = b"json".to_vec();
                    json_args(&v, &mut name, 0, &mut self.args_post);
                }
                Err(_) => self.body_error = true,
            }
        } else if xml {
            self.processor = "XML";
            match xml_text(body) {
                Some(t) => self.xml = Some(t),
                None => self.body_error = true,
            }
        }
    }

    /// `REQUEST_BASENAME`: the filename after its last `/` or `\`.
    pub fn basename(&self) -> &[u8] {
        let f: &[u8] = &self.filename;
        match f.iter().rposition(|&b| b == b'/' || b == b'\\') {
            Some(p) => &f[p + 1..],
            None => f,
        }
    }
}

/// `%XX` decoded (not `+`): the path.
fn percent_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'%') {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).and_then(|&c| hex(c)),
                s.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// `a=1&b=2` (or `a=1; b=2` for cookies): names and values, URL-decoded when
/// `decode`. An element without `=` is a name with an empty value; empty
/// elements are skipped.
fn split_pairs<'a>(data: &'a [u8], sep: u8, decode: bool, out: &mut Vec<Pair<'a>>) {
    for item in data.split(|&b| b == sep) {
        if out.len() >= MAX_ARGS {
            return;
        }
        let item = if decode {
            item
        } else {
            item.trim_ascii_start()
        };
        if item.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', item) {
            Some(eq) => (&item[..eq], &item[eq + 1..]),
            None => (item, &b""[..]),
        };
        if decode {
            out.push((decode_once(name), decode_once(value)));
        } else {
            out.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        }
    }
}

/// JSON leaves as arguments named by key path.
fn json_args(v: &serde_json::Value, name: &mut Vec<u8>, depth: usize, out: &mut Vec<Pair<'_>>) {
    use serde_json::Value;
    if out.len() >= MAX_ARGS {
        return;
    }
    let mut child = |key: &[u8], v: &serde_json::Value, name: &mut Vec<u8>| {
        let len = name.len();
        if depth < JSON_DEPTH {
            name.push(b'.');
            name.extend_from_slice(key);
        }
        json_args(v, name, depth + 1, out);
        name.truncate(len);
    };
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                child(k.as_bytes(), v, name);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                child(itoa::Buffer::new().format(i).as_bytes(), v, name);
            }
        }
        Value::String(s) => out.push((Cow::Owned(name.clone()), Cow::Owned(s.as_bytes().to_vec()))),
        Value::Number(n) => out.push((
            Cow::Owned(name.clone()),
            Cow::Owned(n.to_string().into_bytes()),
        )),
        Value::Bool(b) => out.push((
            Cow::Owned(name.clone()),
            Cow::Borrowed(if *b { b"true" } else { b"false" }),
        )),
        Value::Null => out.push((Cow::Owned(name.clone()), Cow::Borrowed(b""))),
    }
}

/// The text of an XML document (character data and CDATA, entities as sent),
/// or None when its tags do not close. Comments, processing instructions and
/// declarations are not text.
fn xml_text(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut saw_element = false;
    while i < body.len() {
        if body[i] != b'<' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        let rest = &body[i..];
        let (end_marker, keep): (&[u8], bool) = if rest.starts_with(b"<![CDATA[") {
            (b"]]>", true)
        } else if rest.starts_with(b"<!--") {
            (b"-->", false)
        } else {
            (b">", false)
        };
        let end = memchr::memmem::find(rest, end_marker)?;
        if keep {
            out.extend_from_slice(&rest[9..end]);
        } else if !rest.starts_with(b"<?") && !rest.starts_with(b"<!") {
            saw_element = true;
        }
        i += end + end_marker.len();
    }
    saw_element.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        head: &'a [u8],
        target: &'a [u8],
        h: Vec<(&'a [u8], &'a [u8])>,
        body: Option<&'a [u8]>,
    ) -> Request<'a> {
        let _ = target;
        Request::new(head, h, body, "127.0.0.1".into(), b"id")
    }

    fn names<'a>(p: &'a [Pair<'_>]) -> Vec<(&'a [u8], &'a [u8])> {
        p.iter().map(|(n, v)| (&n[..], &v[..])).collect()
    }

    #[test]
    fn query_and_cookies() {
        let head = b"GET /a%20b/c.php?x=1+2&y=%27&z HTTP/1.1\r\nHost: h\r\n\r\n";
        let r = req(
            head,
            b"/a%20b/c.php?x=1+2&y=%27&z",
            vec![(b"Cookie", b"s=1; t=a%20b")],
            None,
        );
        assert_eq!(&r.filename[..], b"/a b/c.php");
        assert_eq!(r.basename(), b"c.php");
        assert_eq!(r.protocol, b"HTTP/1.1");
        assert_eq!(r.line, &b"GET /a%20b/c.php?x=1+2&y=%27&z HTTP/1.1"[..]);
        assert_eq!(
            names(&r.args_get),
            vec![(&b"x"[..], &b"1 2"[..]), (b"y", b"'"), (b"z", b"")]
        );
        assert_eq!(
            names(&r.cookies),
            vec![(&b"s"[..], &b"1"[..]), (b"t", b"a%20b")]
        );
    }

    #[test]
    fn json_body_names_leaves_by_path() {
        let body = br#"{"a":{"b":"x","c":[1,true,null]}}"#;
        let r = req(
            b"POST / HTTP/1.1\r\n",
            b"/",
            vec![(b"Content-Type", b"application/json")],
            Some(body),
        );
        assert_eq!(r.processor, "JSON");
        assert_eq!(
            names(&r.args_post),
            vec![
                (&b"json.a.b"[..], &b"x"[..]),
                (b"json.a.c.0", b"1"),
                (b"json.a.c.1", b"true"),
                (b"json.a.c.2", b""),
            ]
        );
    }

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php\r\n--B--\r\n";
        let r = req(
            b"POST / HTTP/1.1\r\n",
            b"/",
            vec![(b"Content-Type", b"multipart/form-data; boundary=B")],
            Some(body),
        );
        assert_eq!(names(&r.args_post), vec![(&b"a"[..], &b"value"[..])]);
        assert_eq!(r.files, vec![(&b"f"[..], &b"x.php"[..], 5)]);
        assert_eq!(r.part_headers.len(), 3);
        assert!(!r.body_error);
    }

    #[test]
    fn xml_text_and_errors() {
        let r = req(
            b"POST / HTTP/1.1\r\n",
            b"/",
            vec![(b"Content-Type", b"text/xml")],
            Some(b"<?xml version=\"1.0\"?><a x=\"1\">hi<![CDATA[<b>]]></a>"),
        );
        assert_eq!(r.xml.as_deref(), Some(&b"hi<b>"[..]));
        let bad = req(
            b"POST / HTTP/1.1\r\n",
            b"/",
            vec![(b"Content-Type", b"application/json")],
            Some(b"{"),
        );
        assert!(bad.body_error);
    }
}
