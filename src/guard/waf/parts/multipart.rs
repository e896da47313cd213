//! `multipart/form-data` bodies: boundaries, part headers and dispositions.

use super::*;

/// The `boundary` parameter of a Content-Type's parameters (after the first `;`).
pub(super) fn boundary(params: &[u8]) -> Option<&[u8]> {
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

/// Splits a multipart body on `--boundary` lines; whether it gave any part (if
/// not — no boundary line, or nothing readable — the caller inspects the body
/// whole).
pub(super) fn multipart_parts<'a>(
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
