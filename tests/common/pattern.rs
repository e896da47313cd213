//! A byte pattern for large bodies (byte i = i % 251), generated and verified
//! on the fly, so multi-MiB uploads and downloads need no buffers.

use std::io::{self, Write};

pub const PERIOD: usize = 251;

pub fn pattern_block() -> Vec<u8> {
    (0..PERIOD * 300).map(|i| (i % PERIOD) as u8).collect()
}

/// Write `n` bytes of the pattern (byte i = i % 251).
pub fn write_pattern<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    let block = pattern_block();
    let step = (PERIOD * 261) as u64; // multiple of the period: every write starts aligned
    let mut left = n;
    while left > 0 {
        let k = left.min(step) as usize;
        w.write_all(&block[..k])?;
        left -= k as u64;
    }
    Ok(())
}

/// Write `n` pattern bytes as a chunked body (chunks of up to 65511 bytes),
/// including the last chunk and the empty trailer section.
pub fn write_pattern_chunked<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    let block = pattern_block();
    let step = (PERIOD * 261) as u64;
    let mut left = n;
    while left > 0 {
        let k = left.min(step) as usize;
        w.write_all(format!("{:x}\r\n", k).as_bytes())?;
        w.write_all(&block[..k])?;
        w.write_all(b"\r\n")?;
        left -= k as u64;
    }
    w.write_all(b"0\r\n\r\n")
}

pub struct PatternChecker {
    pub offset: u64,
    pub ok: bool,
    block: Vec<u8>,
}

impl PatternChecker {
    pub fn new() -> PatternChecker {
        PatternChecker {
            offset: 0,
            ok: true,
            block: pattern_block(),
        }
    }
    pub fn feed(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            let start = (self.offset % PERIOD as u64) as usize;
            let n = (data.len() - i).min(PERIOD * 299);
            if self.ok && data[i..i + n] != self.block[start..start + n] {
                self.ok = false;
            }
            i += n;
            self.offset += n as u64;
        }
    }
}
