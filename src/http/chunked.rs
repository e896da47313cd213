//! The chunked transfer coding (RFC 9112 §7.1) as an incremental scanner.
//!
//! The proxy forwards chunked bodies as they arrive, byte for byte; this scanner
//! runs over each piece first to find where the body ends and to refuse framing that
//! two parsers could read differently: non-hex or overlong sizes, control bytes in
//! extensions, a missing CRLF after the data, bare LF. It keeps no bytes itself.

use std::ops::Range;

/// A chunked body that cannot be read unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadExtension,
    BadLineEnd,
    TrailerTooLarge,
    BadTrailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size; `digits` so far.
    Size {
        digits: u8,
    },
    /// Whitespace after the size: only `;` (an extension) or CR may follow.
    SizeWs,
    /// Extensions until CR.
    Ext {
        quoted: bool,
        escaped: bool,
    },
    SizeLf,
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    Trailer,
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Scans one chunked body; feed it the body's bytes in order.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    trailer_bytes: usize,
    max_trailer_bytes: usize,
    ext_bytes: usize,
    /// Chunk data bytes seen so far (the decoded body length).
    pub data_len: u64,
}

impl ChunkedScanner {
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0 },
            size: 0,
            trailer_bytes: 0,
            max_trailer_bytes,
            ext_bytes: 0,
            data_len: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of `buf` up to the end of the body. Returns how many belong to
    /// the body (less than `buf.len()` only when the body ended inside it). Calls
    /// `on_data` with the ranges of `buf` that are chunk data.
    pub fn feed(
        &mut self,
        buf: &[u8],
        mut on_data: impl FnMut(Range<usize>),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                State::Size { digits } => match crate::hex::digit(b) {
                    Some(v) => {
                        if digits == 16 {
                            return Err(ChunkError::BadSize);
                        }
                        self.size = (self.size << 4) | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                    }
                    None if digits == 0 => return Err(ChunkError::BadSize),
                    None => match b {
                        b'\r' => self.state = State::SizeLf,
                        b';' => self.start_ext(),
                        b' ' | b'\t' => {
                            self.ext_bytes = 1;
                            self.state = State::SizeWs;
                        }
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {
                        self.ext_bytes += 1;
                        if self.ext_bytes > MAX_EXTENSION_BYTES {
                            return Err(ChunkError::BadExtension);
                        }
                    }
                    b';' => self.start_ext(),
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(ChunkError::BadSize),
                },
                State::Ext { quoted, escaped } => {
                    self.ext_bytes += 1;
                    if self.ext_bytes > MAX_EXTENSION_BYTES {
                        return Err(ChunkError::BadExtension);
                    }
                    if quoted {
                        let next_escaped = !escaped && b == b'\\';
                        let closes = !escaped && b == b'"';
                        if b != b'\t' && (b < 0x20 || b == 0x7f) {
                            return Err(ChunkError::BadExtension);
                        }
                        self.state = State::Ext {
                            quoted: !closes,
                            escaped: next_escaped,
                        };
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'"' {
                        self.state = State::Ext {
                            quoted: true,
                            escaped: false,
                        };
                    } else if !(is_tchar(b) || matches!(b, b';' | b'=' | b' ' | b'\t')) {
                        return Err(ChunkError::BadExtension);
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data { left: self.size }
                    };
                    self.size = 0;
                }
                State::Data { left } => {
                    let take = (left.min((buf.len() - i) as u64)) as usize;
                    on_data(i..i + take);
                    self.data_len += take as u64;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    i += take;
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart | State::Trailer => {
                    let empty = self.state == State::TrailerStart;
                    if b == b'\r' {
                        self.state = State::TrailerLf { empty };
                    } else if b == 0 || b == b'\n' || (empty && (b == b' ' || b == b'\t')) {
                        return Err(ChunkError::BadTrailer);
                    } else {
                        self.trailer_bytes += 1;
                        if self.trailer_bytes > self.max_trailer_bytes {
                            return Err(ChunkError::TrailerTooLarge);
                        }
                        self.state = State::Trailer;
                    }
                }
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    if empty {
                        self.state = State::Done;
                        return Ok(i + 1);
                    }
                    self.state = State::TrailerStart;
                }
                State::Done => return Ok(i),
            }
            i += 1;
        }
        Ok(i)
    }
}

impl ChunkedScanner {
    /// Enters the extensions of a chunk line; whitespace before `;` counts too.
    fn start_ext(&mut self) {
        if self.state != State::SizeWs {
            self.ext_bytes = 0;
        }
        self.state = State::Ext {
            quoted: false,
            escaped: false,
        };
    }
}

/// The most whitespace and extension bytes accepted on one chunk line. They are
/// forwarded but are not body data; the body's wire size is bounded as a whole by
/// the caller (see `BodyState`).
const MAX_EXTENSION_BYTES: usize = 1024;

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8]) -> Result<(usize, bool, Vec<u8>), ChunkError> {
        let mut s = ChunkedScanner::new(1024);
        let mut data = Vec::new();
        let n = s.feed(input, |r| data.extend_from_slice(&input[r]))?;
        Ok((n, s.is_done(), data))
    }

    #[test]
    fn decodes() {
        let body = b"5\r\nhello\r\n6;ext=\"q\\\"x\"\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (n, done, data) = scan_all(body).unwrap();
        assert!(done);
        assert_eq!(data, b"hello world");
        assert_eq!(&body[n..], b"NEXT");
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let body = b"a\r\n0123456789\r\n1 ; a=b\r\nx\r\n0\r\n\r\n";
        let mut s = ChunkedScanner::new(64);
        let mut data = Vec::new();
        for i in 0..body.len() {
            let n = s.feed(&body[i..i + 1], |_| data.push(body[i])).unwrap();
            assert_eq!(n, 1);
        }
        assert!(s.is_done());
        assert_eq!(data, b"0123456789x");
    }

    #[test]
    fn refuses_ambiguous_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"11111111111111111\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhello\n0\r\n\r\n",
            b"5;\x01\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"0\r\n\0\r\n\r\n",
            b"5 xyz\r\n",
            b"5 5\r\n",
        ] {
            assert!(scan_all(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn whitespace_before_extension() {
        let (_, done, data) = scan_all(b"1 \t; a=b\r\nx\r\n0 \r\n\r\n").unwrap();
        assert!(done);
        assert_eq!(data, b"x");
    }

    #[test]
    fn whitespace_limit() {
        let mut line = b"1".to_vec();
        line.extend(std::iter::repeat_n(b' ', MAX_EXTENSION_BYTES + 1));
        assert_eq!(scan_all(&line), Err(ChunkError::BadExtension));
    }

    #[test]
    fn extension_limit() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES + 1));
        assert_eq!(scan_all(&line), Err(ChunkError::BadExtension));
    }

    #[test]
    fn trailer_limit() {
        let mut s = ChunkedScanner::new(4);
        assert_eq!(
            s.feed(b"0\r\nabcdef\r\n\r\n", |_| {}),
            Err(ChunkError::TrailerTooLarge)
        );
    }

    proptest::proptest! {
        #[test]
        fn split_anywhere_same_result(split in 0usize..40) {
            let body = b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n";
            let split = split.min(body.len());
            let mut s = ChunkedScanner::new(64);
            let a = s.feed(&body[..split], |_| {}).unwrap();
            let b = s.feed(&body[split..], |_| {}).unwrap();
            proptest::prop_assert_eq!(a + b, body.len());
            proptest::prop_assert!(s.is_done());
            proptest::prop_assert_eq!(s.data_len, 9);
        }
    }
}
