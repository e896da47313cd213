//! Randomness from the kernel: the one place that calls getrandom(2), for API
//! keys and the request-id generator's seed.

/// Fills `buf` from the kernel's CSPRNG (getrandom(2)), retrying short reads.
pub fn fill(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most `buf.len() - filled` bytes into the valid,
        // writable tail of `buf` that it is given.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(())
}
