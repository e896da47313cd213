//! Hexadecimal, one implementation for the whole gateway: a digit's value (chunk
//! sizes, percent-escapes in paths, SigV4 and WAF URL decoding) and bytes written
//! as lower-case hex (SigV4 digests into a stack buffer; key hashes and
//! certificate digests as strings).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of one hex digit (either case).
pub fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Writes `bytes` as lower-case hex into `out`, which holds twice as many bytes.
pub fn encode_into(bytes: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), bytes.len() * 2);
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// 64 hex digits (either case) as 32 bytes.
pub fn decode32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 8 + 3).collect();
        let text = encode(&bytes);
        assert_eq!(&text[..6], "030b13");
        let mut buf = [0u8; 64];
        encode_into(&bytes, &mut buf);
        assert_eq!(buf, text.as_bytes());
        assert_eq!(decode32(&text).unwrap().to_vec(), bytes);
        assert_eq!(
            decode32(&text.to_ascii_uppercase()).unwrap().to_vec(),
            bytes
        );
        assert_eq!(decode32(&text[..62]), None);
        assert_eq!(decode32(&format!("{}zz", &text[..62])), None);
        assert_eq!(
            (digit(b'f'), digit(b'F'), digit(b'g')),
            (Some(15), Some(15), None)
        );
    }
}
