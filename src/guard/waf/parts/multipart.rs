//! `multipart/form-data` bodies: boundaries, part headers and dispositions.

use super::*;

/// The `boundary` parameter of a Content-Type's parameters (after the first `;`).
pub(in crate::guard::waf) fn boundary(params: &[u8]) -> Option<&[u8]> {
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
pub(super) fn disposition(v: &[u8]) -> (&[u8], [Option<&[u8]>; 2]) {
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

/// One field of a multipart body.
pub(in crate::guard::waf) struct Field<'a> {
    /// Content-Disposition `name`.
    pub name: &'a [u8],
    /// Up to two `filename` / `filename*` values: a file field has one.
    pub files: [Option<&'a [u8]>; 2],
    /// The field's header lines as sent (without the blank line).
    pub headers: &'a [u8],
    pub content: &'a [u8],
}

/// Calls `field` for each field of a multipart body split on `--boundary`
/// lines, until it returns false; whether the body gave any field (if not — no
/// boundary line, or nothing readable — callers inspect the body whole).
pub(in crate::guard::waf) fn for_each_field<'a>(
    boundary: &[u8],
    body: &'a [u8],
    mut field: impl FnMut(Field<'a>) -> bool,
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
    let mut any = false;
    loop {
        let after = d + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            break; // the closing delimiter
        }
        // The rest of the delimiter line (transport padding) and the headers.
        let Some(nl) = body.get(after..).and_then(|rest| memchr(b'\n', rest)) else {
            break;
        };
        let headers_start = after + nl + 1;
        let mut pos = headers_start;
        let mut headers_end = pos;
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
            headers_end = pos;
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
        any = true;
        let go_on = field(Field {
            name,
            files,
            headers: body.get(headers_start..headers_end).unwrap_or_default(),
            content: body.get(pos..end).unwrap_or_default(),
        });
        match next {
            Some(p) if go_on => d = p,
            _ => break,
        }
    }
    any
}

/// A multipart body's fields as parts: a field's value; a file field's
/// file names and its first [`FILE_HEAD`] bytes. Whether the body gave any
/// field (see [`for_each_field`]).
pub(super) fn multipart_parts<'a>(
    boundary: &[u8],
    body: &'a [u8],
    max: usize,
    out: &mut Vec<Part<'a>>,
) -> bool {
    if out.len() >= max {
        return false;
    }
    let before = out.len();
    for_each_field(boundary, body, |f| {
        let field = |value: &'a [u8]| Part {
            target: Target::Body,
            name: Cow::Borrowed(f.name),
            value: Cow::Borrowed(value),
        };
        if f.files.iter().any(Option::is_some) {
            for file in f.files.into_iter().flatten().filter(|n| !n.is_empty()) {
                push_with(out, max, || field(file));
            }
            let head = f
                .content
                .get(..f.content.len().min(FILE_HEAD))
                .unwrap_or_default();
            if !head.is_empty() {
                push_with(out, max, || field(head));
            }
        } else if !f.content.is_empty() {
            push_with(out, max, || field(f.content));
        }
        out.len() < max
    });
    out.len() > before
}
