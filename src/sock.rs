//! Socket-level helpers that monoio does not wrap: the TCP user timeout that bounds
//! a stalled write, and the probe that tells whether an idle pooled connection is
//! still clean. Plain syscalls on a borrowed descriptor.

use std::os::fd::AsRawFd;
use std::time::Duration;

/// Bounds how long written data may stay unacknowledged (including a peer that
/// advertises a zero window and never reads): after `timeout` the kernel aborts the
/// connection and the pending write fails, instead of waiting forever.
pub fn set_user_timeout(sock: &impl AsRawFd, timeout: Duration) {
    let ms = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: setsockopt reads `size_of::<c_uint>()` bytes from a valid pointer to a
    // local; the descriptor is borrowed from a live socket.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&ms as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
}

/// Whether an idle connection has nothing to read: no bytes (a late or unsolicited
/// response would desync the next request) and no EOF (the upstream closed it).
pub fn is_quiet(sock: &impl AsRawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv writes at most 1 byte into a valid local; MSG_PEEK leaves the
    // socket's data in place and MSG_DONTWAIT makes it return at once.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn quiet_until_data_or_close() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        assert!(is_quiet(&c));
        s.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!is_quiet(&c));
        let c2 = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s2, _) = l.accept().unwrap();
        drop(s2);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!is_quiet(&c2));
        set_user_timeout(&c, Duration::from_secs(5));
    }
}
