//! The client side: raw HTTP/1.1 over a `TcpStream` ([`Client`]), raw request
//! builders, the parsed [`Response`], and the line / header / chunked readers the
//! test servers share.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Read timeout applied to every client socket: no test may hang forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub fn get_req(path: &str, host: &str) -> Vec<u8> {
    format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", path, host).into_bytes()
}

pub fn req_with_headers(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut s = format!("{} {} HTTP/1.1\r\n", method, path);
    for (k, v) in headers {
        s.push_str(&format!("{}: {}\r\n", k, v));
    }
    s.push_str("\r\n");
    let mut v = s.into_bytes();
    v.extend_from_slice(body);
    v
}

// ---------------------------------------------------------------------------
// client side: connection + response reader
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// header names lowercased, values trimmed, in wire order
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// was the body chunked on the wire
    pub chunked: bool,
    /// bytes of this response on the wire (head + body framing)
    pub raw_len: usize,
}

/// Header lookups for anything that holds lowercase-named headers in wire order:
/// a response the client read, a request a test server saw.
pub trait HasHeaders {
    fn header_list(&self) -> &[(String, String)];

    fn header(&self, name: &str) -> Option<&str> {
        header_all(self.header_list(), name).into_iter().next()
    }
    fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(self.header_list(), name)
    }
    fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

impl HasHeaders for Response {
    fn header_list(&self) -> &[(String, String)] {
        &self.headers
    }
}

impl Response {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Read one CRLF (or LF) terminated line; error on EOF.
pub fn read_line<R: BufRead>(r: &mut R, count: &mut usize) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(256 * 1024).read_until(b'\n', &mut buf)?;
    *count += n;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "eof while reading a line",
        ));
    }
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated line {:?}", String::from_utf8_lossy(&buf)),
        ));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

pub fn read_headers<R: BufRead>(r: &mut R, count: &mut usize) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, count)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {:?}", line)))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        if headers.len() > 1000 {
            return Err(bad("too many headers"));
        }
    }
}

/// Decode a chunked body, feeding data to `sink`. Reads the trailer section.
pub fn read_chunked_into<R: BufRead>(
    r: &mut R,
    count: &mut usize,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let line = read_line(r, count)?;
        let size_str = line.split(';').next().unwrap().trim();
        let size = u64::from_str_radix(size_str, 16)
            .map_err(|_| bad(format!("bad chunk size {:?}", line)))?;
        if size == 0 {
            // trailers
            loop {
                let t = read_line(r, count)?;
                if t.is_empty() {
                    return Ok(());
                }
            }
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..want])?;
            *count += want;
            sink(&buf[..want]);
            left -= want as u64;
        }
        let crlf = read_line(r, count)?;
        if !crlf.is_empty() {
            return Err(bad(format!("missing CRLF after chunk, got {:?}", crlf)));
        }
    }
}

/// Read one response (1xx interim responses are returned as their own response).
/// `head_request`: the request was HEAD, so no body follows.
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> io::Result<Response> {
    let mut count = 0usize;
    let status_line = read_line(r, &mut count)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/") {
        return Err(bad(format!("bad status line {:?}", status_line)));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {:?}", status_line)))?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers = read_headers(r, &mut count)?;
    let mut resp = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
        chunked: false,
        raw_len: 0,
    };
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    if !no_body {
        let te = resp
            .header("transfer-encoding")
            .map(|s| s.to_ascii_lowercase());
        if te.as_deref().is_some_and(|t| t.contains("chunked")) {
            resp.chunked = true;
            let mut body = Vec::new();
            read_chunked_into(r, &mut count, &mut |d| body.extend_from_slice(d))?;
            resp.body = body;
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| bad(format!("bad content-length {:?}", cl)))?;
            let mut body = vec![0u8; n];
            r.read_exact(&mut body)?;
            count += n;
            resp.body = body;
        } else {
            let mut body = Vec::new();
            r.read_to_end(&mut body)?;
            count += body.len();
            resp.body = body;
        }
    }
    resp.raw_len = count;
    Ok(resp)
}

pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let addr: SocketAddr = format!("127.0.0.1:{}", port).parse().unwrap();
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to gateway");
        Client::from_stream(s)
    }

    pub fn try_connect(port: u16) -> io::Result<Client> {
        let addr: SocketAddr = format!("127.0.0.1:{}", port).parse().unwrap();
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        Ok(Client::from_stream(s))
    }

    pub fn from_stream(s: TcpStream) -> Client {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::with_capacity(64 * 1024, s),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.reader
            .get_mut()
            .write_all(raw)
            .expect("write to gateway");
    }

    pub fn try_send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(raw)
    }

    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false)
            .expect("read response from gateway")
    }

    /// Read the response to a HEAD request (no body).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true)
            .expect("read HEAD response from gateway")
    }

    pub fn try_read_response(&mut self, head: bool) -> io::Result<Response> {
        read_response(&mut self.reader, head)
    }

    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    /// GET `path` with `Host: host` and `headers`.
    pub fn get_with(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut h = vec![("Host", host)];
        h.extend_from_slice(headers);
        self.request(&req_with_headers("GET", path, &h, b""))
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request(&get_req(path, "test.local"))
    }

    /// True if the peer closed the connection (EOF or error) within `within`;
    /// false if it stays open (timeout) or sends more data.
    pub fn is_closed_within(&mut self, within: Duration) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let s = self.reader.get_ref();
        s.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 1];
        let res = self.reader.read(&mut b);
        self.reader
            .get_ref()
            .set_read_timeout(Some(IO_TIMEOUT))
            .unwrap();
        match res {
            Ok(0) => true,
            Ok(_) => false,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                false
            }
            Err(_) => true,
        }
    }

    pub fn assert_closed(&mut self) {
        assert!(
            self.is_closed_within(IO_TIMEOUT),
            "expected the gateway to close the connection (buffered: {:?})",
            String::from_utf8_lossy(self.reader.buffer())
        );
    }

    pub fn shutdown_write(&self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Write);
    }
}

/// Every value of header `name` (any case) in a list of lowercase-named headers.
pub fn header_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let n = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(|(k, _)| *k == n)
        .map(|(_, v)| v.as_str())
        .collect()
}
