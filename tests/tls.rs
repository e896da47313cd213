//! TLS termination and mTLS over real sockets: certificates are made here with
//! rcgen, the client is rustls (plus curl and openssl s_client for interop), the
//! upstreams are the plain echo upstream and a rustls HTTPS upstream in this file.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// certificates
// ---------------------------------------------------------------------------

/// A CA that issues server and client certificates (ECDSA P-256).
struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// An issued certificate and its key.
struct Issued {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    serial: u64,
}

static SERIAL: AtomicUsize = AtomicUsize::new(1000);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { params, key, cert }
    }

    fn issue(&self, dn: &[(rcgen::DnType, &str)], sans: &[&str], client: bool) -> Issued {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        for s in sans {
            params.subject_alt_names.push(match s.split_once(':') {
                Some(("URI", v)) => rcgen::SanType::URI(v.try_into().unwrap()),
                Some(("IP", v)) => rcgen::SanType::IpAddress(v.parse().unwrap()),
                _ => rcgen::SanType::DnsName(s.to_string().try_into().unwrap()),
            });
        }
        let serial = SERIAL.fetch_add(1, Ordering::SeqCst) as u64;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial.to_be_bytes()));
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Issued { cert, key, serial }
    }

    fn server(&self, names: &[&str]) -> Issued {
        self.issue(&[(rcgen::DnType::CommonName, names[0])], names, false)
    }

    fn client(&self, org: &str, cn: &str, sans: &[&str]) -> Issued {
        self.issue(
            &[
                (rcgen::DnType::OrganizationName, org),
                (rcgen::DnType::CommonName, cn),
            ],
            sans,
            true,
        )
    }

    /// A CRL revoking `serials`.
    fn crl(&self, serials: &[u64]) -> String {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&s.to_be_bytes()),
                    revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        params.signed_by(&issuer).unwrap().pem().unwrap()
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        roots
    }
}

impl Issued {
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, self.cert.pem()).unwrap();
        std::fs::write(&key, self.key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::try_from(self.key.serialize_der()).unwrap()
    }
}

/// The certificates most tests use, written to a directory.
struct Pki {
    dir: TempDir,
    ca: Ca,
    client_ca: Ca,
    /// api.test, localhost, 127.0.0.1
    api: Issued,
    /// other.test, *.wild.test
    other: Issued,
    /// CN=billing,O=Acme; URI:spiffe://acme/billing
    billing: Issued,
    /// CN=orders,O=Acme
    orders: Issued,
    /// CN=billing,O=Acme from a CA the gateway does not trust.
    stranger: Issued,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        let ca = Ca::new("Test Server CA");
        let client_ca = Ca::new("Test Client CA");
        let untrusted = Ca::new("Untrusted CA");
        let api = ca.server(&["api.test", "localhost", "IP:127.0.0.1"]);
        let other = ca.server(&["other.test", "*.wild.test"]);
        let billing = client_ca.client("Acme", "billing", &["URI:spiffe://acme/billing"]);
        let orders = client_ca.client("Acme", "orders", &[]);
        let stranger = untrusted.client("Acme", "billing", &[]);
        api.write(&dir.path, "api");
        other.write(&dir.path, "other");
        std::fs::write(dir.path.join("client-ca.pem"), client_ca.cert.pem()).unwrap();
        std::fs::write(dir.path.join("ca.pem"), ca.cert.pem()).unwrap();
        Pki {
            dir,
            ca,
            client_ca,
            api,
            other,
            billing,
            orders,
            stranger,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path.join(name).display().to_string()
    }

    /// A `[[server.tls]]` block on `port` serving api (default) and other.
    fn listener(&self, port: u16, extra: &str) -> String {
        format!(
            "\n[[server.tls]]\nlisten = \"127.0.0.1:{port}\"\ncerts = [{{ cert = \"{}\", key = \"file:{}\" }}, {{ cert = \"{}\", key = \"{}\" }}]\n{extra}\n",
            self.path("api.pem"),
            self.path("api.key"),
            self.path("other.pem"),
            self.path("other.key"),
        )
    }
}

// ---------------------------------------------------------------------------
// a rustls client
// ---------------------------------------------------------------------------

type Versions = &'static [&'static rustls::SupportedProtocolVersion];
const BOTH: Versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
const ONLY_12: Versions = &[&rustls::version::TLS12];
const ONLY_13: Versions = &[&rustls::version::TLS13];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

struct TlsOpts<'a> {
    sni: &'a str,
    roots: RootCertStore,
    versions: Versions,
    client_cert: Option<&'a Issued>,
    alpn: Vec<Vec<u8>>,
    resumption: Option<rustls::client::Resumption>,
}

impl TlsOpts<'_> {
    fn new(pki: &Pki) -> TlsOpts<'static> {
        TlsOpts {
            sni: "api.test",
            roots: pki.ca.roots(),
            versions: BOTH,
            client_cert: None,
            alpn: vec![b"http/1.1".to_vec()],
            resumption: None,
        }
    }

    fn config(&self) -> Arc<ClientConfig> {
        let b = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(self.versions)
            .unwrap()
            .with_root_certificates(self.roots.clone());
        let mut c = match self.client_cert {
            Some(i) => b.with_client_auth_cert(vec![i.der()], i.key_der()).unwrap(),
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = self.alpn.clone();
        if let Some(r) = &self.resumption {
            c.resumption = r.clone();
        }
        Arc::new(c)
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake.
fn tls_connect_with(port: u16, sni: &str, config: Arc<ClientConfig>) -> io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

fn tls_connect(port: u16, opts: &TlsOpts<'_>) -> io::Result<Tls> {
    tls_connect_with(port, opts.sni, opts.config())
}

/// Sends `raw` and reads one response.
fn tls_request(s: &mut Tls, raw: &[u8]) -> io::Result<Response> {
    s.write_all(raw)?;
    s.flush()?;
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false)?;
    if !r.buffer().is_empty() {
        return Err(io::Error::other("bytes after the response"));
    }
    Ok(resp)
}

fn get(path: &str) -> Vec<u8> {
    get_req(path, "api.test")
}

/// The leaf certificate the server presented.
fn peer_leaf(s: &Tls) -> CertificateDer<'static> {
    s.conn.peer_certificates().unwrap()[0].clone().into_owned()
}

/// The header the upstream saw, from the echo upstream's `h:name=value` lines.
fn seen_header(r: &Response, name: &str) -> Option<String> {
    let prefix = format!("h:{name}=");
    r.body_str()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

fn start(pki: &Pki, tls_extra: &str, rest: &str) -> (Gateway, u16) {
    let port = free_port();
    let gw = Gateway::start(&pki.listener(port, tls_extra), rest);
    wait_port(port);
    (gw, port)
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS port {port} not accepting");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// handshakes
// ---------------------------------------------------------------------------

#[test]
fn tls13_with_alpn_proxies_and_tells_the_upstream_https() {
    let pki = Pki::new();
    let up = Upstream::start();
    let (_gw, port) = start(&pki, "", &proxy_all(&[up.port], ""));
    let mut s = tls_connect(port, &TlsOpts::new(&pki)).unwrap();
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = tls_request(&mut s, &get("/hello?x=1")).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert!(r.body_str().contains("target=/hello?x=1"));
    // Keep-alive over TLS: a second request on the same connection.
    let r = tls_request(&mut s, &get("/again")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains("target=/again"));
    assert_eq!(up.accepted(), 1);
}

#[test]
fn tls12_handshake_with_a_modern_suite() {
    let pki = Pki::new();
    let (_gw, port) = start(&pki, "", &mock_route("m", "/", 200, "ok"));
    let mut opts = TlsOpts::new(&pki);
    opts.versions = ONLY_12;
    let mut s = tls_connect(port, &opts).unwrap();
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = format!("{:?}", s.conn.negotiated_cipher_suite().unwrap().suite());
    assert!(
        suite.starts_with("TLS_ECDHE_ECDSA_WITH_")
            && (suite.contains("GCM") || suite.contains("CHACHA20")),
        "{suite}"
    );
    let r = tls_request(&mut s, &get("/")).unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
}

#[test]
fn min_version_13_refuses_a_tls12_client() {
    let pki = Pki::new();
    let (_gw, port) = start(
        &pki,
        "min_version = \"1.3\"",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut opts = TlsOpts::new(&pki);
    opts.versions = ONLY_12;
    assert!(tls_connect(port, &opts).is_err());
    opts.versions = ONLY_13;
    let mut s = tls_connect(port, &opts).unwrap();
    assert_eq!(tls_request(&mut s, &get("/")).unwrap().status, 200);
}

#[test]
fn sni_chooses_the_certificate_with_a_default() {
    let pki = Pki::new();
    let (_gw, port) = start(&pki, "", &mock_route("m", "/", 200, "ok"));
    let leaf_for = |sni: &str| {
        let mut opts = TlsOpts::new(&pki);
        opts.sni = sni;
        let mut s = tls_connect(port, &opts).unwrap();
        assert_eq!(tls_request(&mut s, &get("/")).unwrap().status, 200);
        peer_leaf(&s)
    };
    assert_eq!(leaf_for("api.test"), pki.api.der());
    assert_eq!(leaf_for("other.test"), pki.other.der());
    assert_eq!(leaf_for("OTHER.test"), pki.other.der());
    assert_eq!(leaf_for("x.wild.test"), pki.other.der());
    // No SNI (an IP address) and an unknown name: the first certificate.
    assert_eq!(leaf_for("127.0.0.1"), pki.api.der());
    let mut opts = TlsOpts::new(&pki);
    opts.sni = "unknown.test";
    // The default certificate does not name it, so a verifying client refuses.
    assert!(tls_connect(port, &opts).is_err());
}

#[test]
fn alpn_without_http11_is_refused() {
    let pki = Pki::new();
    let (_gw, port) = start(&pki, "", &mock_route("m", "/", 200, "ok"));
    let mut opts = TlsOpts::new(&pki);
    opts.alpn = vec![b"h2".to_vec()];
    assert!(tls_connect(port, &opts).is_err());
    // No ALPN at all is fine (HTTP/1.1 is assumed).
    opts.alpn = vec![];
    let mut s = tls_connect(port, &opts).unwrap();
    assert_eq!(tls_request(&mut s, &get("/")).unwrap().status, 200);
}

#[test]
fn sessions_resume_with_tickets() {
    let pki = Pki::new();
    let (_gw, port) = start(&pki, "", &mock_route("m", "/", 200, "ok"));
    for versions in [ONLY_13, ONLY_12] {
        let mut opts = TlsOpts::new(&pki);
        opts.versions = versions;
        opts.resumption = Some(rustls::client::Resumption::in_memory_sessions(16));
        let config = opts.config();
        let mut first = tls_connect_with(port, "api.test", config.clone()).unwrap();
        assert_eq!(tls_request(&mut first, &get("/")).unwrap().status, 200);
        assert_eq!(
            first.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        let mut second = tls_connect_with(port, "api.test", config).unwrap();
        assert_eq!(tls_request(&mut second, &get("/")).unwrap().status, 200);
        assert_eq!(
            second.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{versions:?}"
        );
    }
}

#[test]
fn a_ticket_from_another_listener_does_not_resume_into_mtls() {
    let pki = Pki::new();
    let open_port = free_port();
    let mtls_port = free_port();
    let server = format!(
        "{}{}",
        pki.listener(open_port, ""),
        pki.listener(mtls_port, &mtls_listener(&pki, "required"))
    );
    let _gw = Gateway::start(&server, &mock_route("m", "/", 200, "ok"));
    wait_port(open_port);
    wait_port(mtls_port);
    for versions in [ONLY_13, ONLY_12] {
        let mut opts = TlsOpts::new(&pki);
        opts.versions = versions;
        opts.resumption = Some(rustls::client::Resumption::in_memory_sessions(16));
        let config = opts.config();
        // A session (and ticket) from the listener without mTLS, same server name…
        let mut s = tls_connect_with(open_port, "api.test", config.clone()).unwrap();
        assert_eq!(tls_request(&mut s, &get("/")).unwrap().status, 200);
        // …does not let a client without a certificate into the mTLS listener.
        let refused = match tls_connect_with(mtls_port, "api.test", config) {
            Err(_) => true,
            Ok(mut s) => tls_request(&mut s, &get("/")).is_err(),
        };
        assert!(refused, "{versions:?}");
    }
}

#[test]
fn a_resumed_mtls_session_keeps_its_verified_certificate() {
    let pki = Pki::new();
    let up = Upstream::start();
    let (_gw, port) = start(&pki, &mtls_listener(&pki, "optional"), &mtls_routes(&up));
    let mut opts = TlsOpts::new(&pki);
    opts.client_cert = Some(&pki.billing);
    opts.resumption = Some(rustls::client::Resumption::in_memory_sessions(16));
    let config = opts.config();
    let mut first = tls_connect_with(port, "api.test", config.clone()).unwrap();
    assert_eq!(
        tls_request(&mut first, &get("/internal/a")).unwrap().status,
        200
    );
    let mut second = tls_connect_with(port, "api.test", config).unwrap();
    let r = tls_request(&mut second, &get("/internal/b")).unwrap();
    assert_eq!(
        second.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        seen_header(&r, "x-client-cert-subject").as_deref(),
        Some("CN=billing,O=Acme")
    );
}

#[test]
fn a_silent_client_is_dropped_at_the_handshake_timeout() {
    let pki = Pki::new();
    let (_gw, port) = start(
        &pki,
        "handshake_timeout = \"300ms\"",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tcp.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected a close");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn plain_http_to_the_tls_port_is_refused_without_a_hang() {
    let pki = Pki::new();
    let (gw, port) = start(&pki, "", &mock_route("m", "/", 200, "ok"));
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&get_req("/", "api.test")).unwrap();
    // At most a TLS alert, then the close.
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).expect("closed, not timed out");
    assert!(
        got.len() < 64 && got.first().is_none_or(|&b| b == 0x15),
        "{got:?}"
    );
    // The gateway is fine.
    assert_eq!(gw.get("/").status, 200);
}

// ---------------------------------------------------------------------------
// mTLS
// ---------------------------------------------------------------------------

fn mtls_listener(pki: &Pki, mode: &str) -> String {
    format!(
        "client_ca = \"{}\"\nclient_auth = \"{mode}\"",
        pki.path("client-ca.pem")
    )
}

#[test]
fn required_mtls_refuses_a_missing_and_an_untrusted_certificate() {
    let pki = Pki::new();
    let (_gw, port) = start(
        &pki,
        &mtls_listener(&pki, "required"),
        &mock_route("m", "/", 200, "ok"),
    );
    // TLS 1.3: the client may finish before the server checks; then the first read
    // fails. Either way no response.
    let refused = |client: Option<&Issued>| {
        let mut opts = TlsOpts::new(&pki);
        opts.client_cert = client;
        match tls_connect(port, &opts) {
            Err(_) => true,
            Ok(mut s) => tls_request(&mut s, &get("/")).is_err(),
        }
    };
    assert!(refused(None), "no certificate");
    assert!(refused(Some(&pki.stranger)), "untrusted certificate");
    let mut opts = TlsOpts::new(&pki);
    opts.client_cert = Some(&pki.billing);
    let mut s = tls_connect(port, &opts).unwrap();
    let r = tls_request(&mut s, &get("/")).unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
}

#[test]
fn a_revoked_client_certificate_is_refused() {
    let pki = Pki::new();
    std::fs::write(
        pki.dir.path.join("clients.crl"),
        pki.client_ca.crl(&[pki.orders.serial]),
    )
    .unwrap();
    let (_gw, port) = start(
        &pki,
        &format!(
            "{}\ncrl = \"{}\"",
            mtls_listener(&pki, "required"),
            pki.path("clients.crl")
        ),
        &mock_route("m", "/", 200, "ok"),
    );
    let mut opts = TlsOpts::new(&pki);
    opts.client_cert = Some(&pki.orders);
    let refused = match tls_connect(port, &opts) {
        Err(_) => true,
        Ok(mut s) => tls_request(&mut s, &get("/")).is_err(),
    };
    assert!(refused);
    opts.client_cert = Some(&pki.billing);
    let mut s = tls_connect(port, &opts).unwrap();
    assert_eq!(tls_request(&mut s, &get("/")).unwrap().status, 200);
}

fn mtls_routes(up: &Upstream) -> String {
    format!(
        "[auth.internal]\ntype = \"mtls\"\nsubjects = [\"CN=billing,O=Acme\", \"URI:spiffe://acme/payments\"]\n\n\
         {}\
         [[route]]\nname = \"internal\"\npath = \"/internal\"\nupstream = \"u\"\nauth = \"internal\"\n\n\
         [[route]]\nname = \"open\"\npath = \"/\"\nupstream = \"u\"\n\n",
        upstream_block("u", &[up.port], "")
    )
}

#[test]
fn optional_mtls_with_subject_matching_and_certificate_headers() {
    let pki = Pki::new();
    let up = Upstream::start();
    let (gw, port) = start(&pki, &mtls_listener(&pki, "optional"), &mtls_routes(&up));
    let forged_to = |path: &str| {
        req_with_headers(
            "GET",
            path,
            &[
                ("Host", "api.test"),
                ("X-Client-Cert-Subject", "CN=billing,O=Acme"),
                ("x-client-cert-sha256", "00"),
                ("X_Client_Cert_San", "DNS:forged"),
            ],
            b"",
        )
    };
    let forged = forged_to("/internal/x");
    // No certificate: the open route works, the mtls route is 403, forged headers
    // never reach the upstream.
    let mut s = tls_connect(port, &TlsOpts::new(&pki)).unwrap();
    let r = tls_request(&mut s, &get("/open")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(seen_header(&r, "x-client-cert-subject"), None);
    let r = tls_request(&mut s, &forged).unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (403, FORBIDDEN));
    let r = tls_request(&mut s, &forged_to("/open/x")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(seen_header(&r, "x-client-cert-subject"), None);
    assert_eq!(seen_header(&r, "x-client-cert-sha256"), None);
    // Underscore spellings are not forwarded either (CGI would read them as dashes).
    assert!(
        !r.body_str().to_ascii_lowercase().contains("client_cert"),
        "{}",
        r.body_str()
    );
    // Plain HTTP: the same.
    let mut c = gw.connect();
    assert_eq!(c.request(&forged).status, 403);

    // A verified certificate that does not match: 403.
    let mut opts = TlsOpts::new(&pki);
    opts.client_cert = Some(&pki.orders);
    let mut s = tls_connect(port, &opts).unwrap();
    let r = tls_request(&mut s, &get("/internal/x")).unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (403, FORBIDDEN));

    // The matching one: through, with the facts upstream and the forgery replaced.
    opts.client_cert = Some(&pki.billing);
    let mut s = tls_connect(port, &opts).unwrap();
    let r = tls_request(&mut s, &forged).unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        seen_header(&r, "x-client-cert-subject").as_deref(),
        Some("CN=billing,O=Acme")
    );
    assert_eq!(
        seen_header(&r, "x-client-cert-san").as_deref(),
        Some("URI:spiffe://acme/billing")
    );
    let digest = portcullis::hex::encode(&Sha256::digest(pki.billing.der().as_ref()));
    assert_eq!(seen_header(&r, "x-client-cert-sha256"), Some(digest));
    assert_eq!(r.body_str().matches("h:x-client-cert-subject=").count(), 1);
}

#[test]
fn an_untrusted_certificate_on_optional_mtls_fails_the_handshake() {
    let pki = Pki::new();
    let up = Upstream::start();
    let (_gw, port) = start(&pki, &mtls_listener(&pki, "optional"), &mtls_routes(&up));
    let mut opts = TlsOpts::new(&pki);
    opts.client_cert = Some(&pki.stranger);
    let refused = match tls_connect(port, &opts) {
        Err(_) => true,
        Ok(mut s) => tls_request(&mut s, &get("/open")).is_err(),
    };
    assert!(refused, "a certificate that is sent must verify");
}

// ---------------------------------------------------------------------------
// HTTPS only, HSTS
// ---------------------------------------------------------------------------

#[test]
fn https_only_redirects_plain_requests_and_hsts_marks_tls_responses() {
    let pki = Pki::new();
    let (gw, port) = start(
        &pki,
        "https_only = true\nhsts = \"max-age=31536000; includeSubDomains\"",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let r = c.request(&get_req("/v1/orders?id=7&x=%20", "api.test:8080"));
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://api.test:{port}/v1/orders?id=7&x=%20").as_str())
    );
    assert_eq!(r.header("strict-transport-security"), None);
    // POST is redirected too (308 keeps the method and body).
    let r = c.request(&req_with_headers(
        "POST",
        "/submit",
        &[("Host", "api.test"), ("Content-Length", "2")],
        b"{}",
    ));
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://api.test:{port}/submit").as_str())
    );
    // Over TLS: served, with HSTS.
    let mut s = tls_connect(port, &TlsOpts::new(&pki)).unwrap();
    let r = tls_request(&mut s, &get("/")).unwrap();
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let r = tls_request(&mut s, &get_req("/", "api.test")).unwrap();
    assert_eq!(r.header_all("strict-transport-security").len(), 1);
}

#[test]
fn https_only_trusts_a_proxy_that_says_the_client_used_https() {
    let pki = Pki::new();
    let port = free_port();
    let gw = Gateway::start(
        &format!(
            "trusted_proxies = [\"127.0.0.0/8\"]\n{}",
            pki.listener(port, "https_only = true")
        ),
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let r = c.request(&req_with_headers(
        "GET",
        "/x",
        &[("Host", "api.test"), ("X-Forwarded-Proto", "https")],
        b"",
    ));
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
    let r = c.request(&req_with_headers(
        "GET",
        "/x",
        &[("Host", "api.test"), ("X-Forwarded-Proto", "http")],
        b"",
    ));
    assert_eq!(r.status, 308);
}

#[test]
fn https_only_can_forbid_unsafe_methods() {
    let pki = Pki::new();
    let (gw, port) = start(
        &pki,
        "https_only = true\nhttps_only_unsafe = \"forbid\"",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let r = c.request(&req_with_headers(
        "POST",
        "/submit",
        &[("Host", "api.test"), ("Content-Length", "2")],
        b"{}",
    ));
    assert_eq!((r.status, r.body_str().as_str()), (403, FORBIDDEN));
    let r = c.request(&get_req("/x", "api.test"));
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://api.test:{port}/x").as_str())
    );
}

// ---------------------------------------------------------------------------
// upstream TLS
// ---------------------------------------------------------------------------

/// An HTTPS upstream (rustls, blocking): answers `secure:TARGET` with keep-alive.
struct TlsUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    server: TestServer,
}

impl TlsUpstream {
    fn start(cert: &Issued) -> TlsUpstream {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der()], cert.key_der())
            .unwrap();
        let config = Arc::new(config);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sn = seen.clone();
        let server = TestServer::start("tls upstream", move |tcp, _| {
            let seen = sn.clone();
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut s = BufReader::new(StreamOwned::new(conn, tcp));
            loop {
                let mut line = String::new();
                if s.read_line(&mut line).unwrap_or(0) == 0 {
                    return Ok(());
                }
                let target = line.split(' ').nth(1).unwrap_or("").to_string();
                let mut proto = String::new();
                loop {
                    let mut h = String::new();
                    if s.read_line(&mut h).unwrap_or(0) == 0 {
                        return Ok(());
                    }
                    if h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("x-forwarded-proto: ") {
                        proto = v.trim().to_string();
                    }
                }
                seen.lock().unwrap().push(target.clone());
                let body = format!("secure:{target} proto:{proto}");
                let out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let w = s.get_mut();
                if w.write_all(out.as_bytes()).and_then(|_| w.flush()).is_err() {
                    return Ok(());
                }
            }
        });
        TlsUpstream {
            port: server.port,
            seen,
            server,
        }
    }

    /// TCP connections accepted so far.
    fn accepted(&self) -> usize {
        self.server.accepted()
    }
}

fn tls_upstream_config(pki: &Pki, port: u16, tls: &str) -> String {
    format!(
        "{}{}",
        upstream_block("secure", &[port], &format!("tls = {{ {tls} }}")),
        proxy_route("all", "/", "secure")
    )
    .replace("CA_PATH", &pki.path("ca.pem"))
}

#[test]
fn upstream_tls_verifies_and_pools_connections() {
    let pki = Pki::new();
    let cert = pki.ca.server(&["upstream.test"]);
    let up = TlsUpstream::start(&cert);
    let gw = Gateway::start(
        "",
        &tls_upstream_config(&pki, up.port, "ca = \"CA_PATH\", sni = \"upstream.test\""),
    );
    let mut c = gw.connect();
    for i in 0..3 {
        let r = c.request(&get_req(&format!("/r{i}"), "api.test"));
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.body_str(), format!("secure:/r{i} proto:http"));
    }
    // A second client connection reuses the pooled TLS connection.
    let r = gw.get("/again");
    assert_eq!(r.status, 200);
    assert_eq!(up.accepted(), 1);
    assert_eq!(up.seen.lock().unwrap().len(), 4);
}

#[test]
fn upstreams_sharing_a_target_do_not_share_tls_connections() {
    let pki = Pki::new();
    let up = TlsUpstream::start(&pki.ca.server(&["upstream.test", "alt.test"]));
    let config = format!(
        "{}{}{}{}",
        upstream_block(
            "a",
            &[up.port],
            "tls = { ca = \"CA_PATH\", sni = \"upstream.test\" }"
        ),
        upstream_block(
            "b",
            &[up.port],
            "tls = { ca = \"CA_PATH\", sni = \"alt.test\" }"
        ),
        proxy_route("to-a", "/a", "a"),
        proxy_route("to-b", "/b", "b"),
    )
    .replace("CA_PATH", &pki.path("ca.pem"));
    let gw = Gateway::start("", &config);
    let mut c = gw.connect();
    for path in ["/a/1", "/b/1", "/a/2", "/b/2"] {
        let r = c.request(&get_req(path, "api.test"));
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    // One pooled connection per upstream, each reused once.
    assert_eq!(up.accepted(), 2);
}

#[test]
fn upstream_tls_verification_failure_is_502() {
    let pki = Pki::new();
    // Signed by a CA the gateway is not told about.
    let other_ca = Ca::new("Elsewhere");
    let up = TlsUpstream::start(&other_ca.server(&["upstream.test"]));
    let gw = Gateway::start(
        "",
        &tls_upstream_config(&pki, up.port, "ca = \"CA_PATH\", sni = \"upstream.test\""),
    );
    let r = gw.get("/x");
    assert_eq!((r.status, r.body_str().as_str()), (502, BAD_GATEWAY));
    assert!(up.seen.lock().unwrap().is_empty());
    // The wrong name with the right CA: 502 too.
    let up2 = TlsUpstream::start(&pki.ca.server(&["elsewhere.test"]));
    let gw2 = Gateway::start(
        "",
        &tls_upstream_config(&pki, up2.port, "ca = \"CA_PATH\", sni = \"upstream.test\""),
    );
    assert_eq!(gw2.get("/x").status, 502);
    // verify = false accepts it (testing setups).
    let gw3 = Gateway::start(
        "",
        &tls_upstream_config(&pki, up.port, "verify = false, sni = \"upstream.test\""),
    );
    let r = gw3.get("/x");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "secure:/x proto:http")
    );
}

#[test]
fn tls_end_to_end_with_large_bodies() {
    let pki = Pki::new();
    let up = Upstream::start();
    let (_gw, port) = start(&pki, "", &proxy_all(&[up.port], ""));
    let mut s = tls_connect(port, &TlsOpts::new(&pki)).unwrap();
    // 3 MiB down.
    let r = tls_request(&mut s, &get("/big?bytes=3145728")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3 << 20);
    let mut expected = Vec::new();
    write_pattern(&mut expected, 3 << 20).unwrap();
    assert!(r.body == expected, "body differs");
    // 2 MiB up.
    let mut body = Vec::new();
    write_pattern(&mut body, 2 << 20).unwrap();
    let raw = req_with_headers(
        "POST",
        "/upload",
        &[
            ("Host", "api.test"),
            ("Content-Length", &body.len().to_string()),
        ],
        &body,
    );
    let r = tls_request(&mut s, &raw).unwrap();
    assert_eq!(r.body_str(), "received=2097152 pattern=ok");
}

#[test]
fn a_response_cut_short_upstream_ends_without_close_notify() {
    let pki = Pki::new();
    let up = Upstream::start();
    let (_gw, port) = start(&pki, "", &proxy_all(&[up.port], ""));
    let mut s = tls_connect(port, &TlsOpts::new(&pki)).unwrap();
    s.write_all(&get("/truncated")).unwrap();
    let mut got = Vec::new();
    let end = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("only ten b"), "{text}");
    // A clean close_notify would read as Ok: the client could not tell.
    let e = end.expect_err("truncation must not look like a clean end");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    // A complete response ends with close_notify.
    let mut s = tls_connect(port, &TlsOpts::new(&pki)).unwrap();
    s.write_all(&get_req("/close", "api.test")).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("clean end");
    assert!(String::from_utf8_lossy(&got).ends_with("this body is delimited by close"));
}

// ---------------------------------------------------------------------------
// reload
// ---------------------------------------------------------------------------

#[test]
fn sighup_serves_a_new_certificate_while_old_connections_keep_working() {
    let pki = Pki::new();
    let port = free_port();
    let certs_dir = TempDir::new("reload-certs");
    let first = pki.ca.server(&["api.test"]);
    let second = pki.ca.server(&["api.test"]);
    let (cert, key) = first.write(&certs_dir.path, "live");
    let block = |cert: &Path, key: &Path| {
        format!(
            "\n[[server.tls]]\nlisten = \"127.0.0.1:{port}\"\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\n",
            cert.display(),
            key.display()
        )
    };
    let routes = mock_route("m", "/", 200, "ok");
    let gw = Gateway::start(&block(&cert, &key), &routes);
    wait_port(port);
    let opts = TlsOpts::new(&pki);
    let mut old = tls_connect(port, &opts).unwrap();
    assert_eq!(peer_leaf(&old), first.der());
    assert_eq!(tls_request(&mut old, &get("/")).unwrap().status, 200);

    // Replace the files and reload.
    second.write(&certs_dir.path, "live");
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload ok", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let mut new = tls_connect(port, &opts).unwrap();
    assert_eq!(peer_leaf(&new), second.der());
    assert_eq!(tls_request(&mut new, &get("/")).unwrap().status, 200);
    // The connection made before the reload still works.
    assert_eq!(tls_request(&mut old, &get("/")).unwrap().status, 200);

    // A key that does not fit the certificate: the reload fails, says why, and
    // the running certificate stays.
    let third = pki.ca.server(&["api.test"]);
    std::fs::write(&cert, third.cert.pem()).unwrap();
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload failed", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    assert!(logs.contains("server.tls[0].certs[0].key"), "{logs}");
    assert!(logs.contains("does not fit"), "{logs}");
    let mut after = tls_connect(port, &opts).unwrap();
    assert_eq!(peer_leaf(&after), second.der());
    assert_eq!(tls_request(&mut after, &get("/")).unwrap().status, 200);
}

// ---------------------------------------------------------------------------
// config errors
// ---------------------------------------------------------------------------

#[test]
fn bad_tls_config_names_file_line_and_field() {
    let pki = Pki::new();
    let routes = mock_route("m", "/", 200, "ok");
    let cases = [
        (
            format!(
                "[[server.tls]]\nlisten = \"127.0.0.1:1\"\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\n",
                pki.path("missing.pem"),
                pki.path("api.key")
            ),
            "server.tls[0].certs[0].cert",
            "cannot read",
        ),
        (
            format!(
                "[[server.tls]]\nlisten = \"127.0.0.1:1\"\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\n",
                pki.path("api.pem"),
                pki.path("other.key")
            ),
            "server.tls[0].certs[0].key",
            "does not fit",
        ),
        (
            format!(
                "[[server.tls]]\nlisten = \"127.0.0.1:1\"\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\nclient_auth = \"required\"\n",
                pki.path("api.pem"),
                pki.path("api.key")
            ),
            "server.tls[0].client_auth",
            "needs client_ca",
        ),
        (
            format!(
                "[[server.tls]]\nlisten = \"127.0.0.1:1\"\ncerts = [{{ cert = \"{}\", key = \"{}\" }}]\nmin_version = \"1.1\"\n",
                pki.path("api.pem"),
                pki.path("api.key")
            ),
            "server.tls[0].min_version",
            "expected",
        ),
        (
            "[auth.internal]\ntype = \"mtls\"\nsubjects = [\"CN=x\"]\n".to_string(),
            "auth.internal.type",
            "client_ca",
        ),
    ];
    for (server, field, message) in cases {
        let dir = TempDir::new("tlscfg");
        let path = dir.path.join("gw.toml");
        let text = if server.starts_with("[auth") {
            format!("{server}\n{routes}")
        } else {
            format!("[server]\nlisten = []\n{server}\n{routes}")
        };
        std::fs::write(&path, &text).unwrap();
        let (code, out, err) = check_config_file(&path);
        let all = format!("{out}{err}");
        assert_ne!(code, 0, "{text}");
        assert!(all.contains("gw.toml:"), "{all}");
        assert!(all.contains(field), "want {field} in {all}");
        assert!(all.contains(message), "want {message} in {all}");
    }
}

// ---------------------------------------------------------------------------
// real clients
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs curl and openssl"]
fn curl_and_openssl_interoperate() {
    let pki = Pki::new();
    let (billing_cert, billing_key) = pki.billing.write(&pki.dir.path, "billing");
    let up = Upstream::start();
    let (_gw, port) = start(
        &pki,
        &format!("{}\nhsts = \"max-age=60\"", mtls_listener(&pki, "optional")),
        &mtls_routes(&up),
    );
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = |p: &str| format!("https://api.test:{port}{p}");
    let curl = |args: &[&str]| {
        let (st, out, err) = run_with_timeout(
            Command::new("curl")
                .args(["-sS", "-i", "--http1.1", "--max-time", "10"])
                .args(["--resolve", &resolve, "--cacert", &pki.path("ca.pem")])
                .args(args),
            Duration::from_secs(20),
        );
        assert!(st.success(), "curl failed: {err}");
        out
    };
    let out = curl(&[&url("/open/curl")]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out
        .to_ascii_lowercase()
        .contains("strict-transport-security: max-age=60"));
    assert!(out.contains("h:x-forwarded-proto=https"), "{out}");
    let out = curl(&[&url("/internal/curl")]);
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    let out = curl(&[
        "--cert",
        &billing_cert.display().to_string(),
        "--key",
        &billing_key.display().to_string(),
        &url("/internal/curl"),
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("h:x-client-cert-subject=CN=billing,O=Acme"),
        "{out}"
    );

    for (version, expect) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-servername",
                "other.test",
                "-alpn",
                "http/1.1",
                "-ign_eof",
                version,
            ])
            .args(["-CAfile", &pki.path("ca.pem"), "-verify_return_error"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /open/ssl HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
        assert!(text.contains(expect), "{text}");
        assert!(text.contains("subject=CN = other.test"), "{text}");
        assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    }
}

#[test]
fn handshakes_are_counted_by_result() {
    let pki = Pki::new();
    let admin = free_port();
    let (_gw, port) = start(
        &pki,
        "min_version = \"1.3\"",
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{}",
            mock_route("m", "/", 200, "ok")
        ),
    );
    let mut opts = TlsOpts::new(&pki);
    opts.versions = ONLY_12;
    assert!(tls_connect(port, &opts).is_err());
    opts.versions = ONLY_13;
    let mut s = tls_connect(port, &opts).unwrap();
    assert_eq!(tls_request(&mut s, &get("/")).unwrap().status, 200);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let value = |result: &str| -> u64 {
        let prefix = format!(
            "portcullis_tls_handshakes_total{{listener=\"127.0.0.1:{port}\",result=\"{result}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    };
    assert_eq!(value("ok"), 1, "{text}");
    // The refused TLS 1.2 client, and the harness's plain port probes.
    assert!(value("error") >= 1, "{text}");
}
