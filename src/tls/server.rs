//! `[[server.tls]]` → [`ServerTls`]: the rustls server config of one HTTPS
//! listener — certificates chosen by SNI ([`SniResolver`]), TLS 1.2/1.3 with
//! rustls's modern suites (aws-lc-rs), ALPN `http/1.1`, session tickets, and the
//! client-certificate verifier for mTLS — plus the listener's HTTP-level settings
//! (HSTS, HTTPS-only, handshake timeout).
//!
//! Built when the config is compiled, so a reload re-reads every certificate, key,
//! CA and CRL; a file that cannot be read or a key that does not match its
//! certificate fails the reload with the field's line and the old config stays.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::{ConfigError, Source, Spanned, TlsListenerConfig};

/// One compiled HTTPS listener.
#[derive(Debug)]
pub struct ServerTls {
    pub listen: SocketAddr,
    pub config: Arc<rustls::ServerConfig>,
    /// `strict-transport-security: …\r\n`, sent on every response of this listener.
    pub hsts_line: Option<Box<str>>,
    pub handshake_timeout: Duration,
    pub https_only: bool,
    /// With `https_only`: answer 403 instead of 308 to non-idempotent methods.
    pub forbid_unsafe: bool,
}

/// The crypto every TLS config uses: rustls's aws-lc-rs provider, its suites
/// ordered AES-128-GCM first (then AES-256-GCM, then ChaCha20-Poly1305), TLS 1.3
/// before 1.2.
///
/// Why AES-128 first: most clients (OpenSSL's default, wrk, curl) list
/// AES-256-GCM-SHA384 first, and its SHA-384 key schedule was ~20% of a full
/// handshake's CPU here (aws-lc's SHA-512 without hardware help) against SHA-256
/// with the CPU's SHA extensions. Both are modern AEAD suites; listeners choose by
/// this order (`ignore_client_order`).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = rustls::crypto::aws_lc_rs::default_provider();
            p.cipher_suites.sort_by_key(|s| {
                let name = format!("{:?}", s.suite());
                let aead = if name.contains("AES_128") {
                    0
                } else if name.contains("AES_256") {
                    1
                } else {
                    2
                };
                (s.tls13().is_none(), aead)
            });
            Arc::new(p)
        })
        .clone()
}

/// One ticket key (rotated by rustls every 6 hours) for the listeners without
/// mTLS, kept across reloads, so their session tickets stay valid.
///
/// A listener with `client_ca` gets its own key at every compile instead: a
/// resumed session carries the client certificate verified when the ticket was
/// issued, and rustls does not verify it again. A ticket from another listener (a
/// different CA, or none) or from before a reload (a rotated CA, a new CRL) must
/// therefore not resume there.
fn shared_ticketer() -> Option<Arc<dyn rustls::server::ProducesTickets>> {
    static TICKETER: OnceLock<Option<Arc<dyn rustls::server::ProducesTickets>>> = OnceLock::new();
    TICKETER
        .get_or_init(|| rustls::crypto::aws_lc_rs::Ticketer::new().ok())
        .clone()
}

pub fn compile(i: usize, t: &TlsListenerConfig, source: &Source) -> Result<ServerTls, ConfigError> {
    let field = |f: &str| format!("server.tls[{i}].{f}");
    let provider = provider();
    let versions: &[&rustls::SupportedProtocolVersion] =
        match t.min_version.as_ref().map(|v| v.get_ref().as_str()) {
            None | Some("1.2") => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Some("1.3") => &[&rustls::version::TLS13],
            Some(other) => {
                let v = t.min_version.as_ref().expect("present");
                return Err(source.error_at(
                    v.span(),
                    &field("min_version"),
                    format!("expected \"1.2\" or \"1.3\", not {other:?}"),
                ));
            }
        };
    if t.certs.get_ref().is_empty() {
        return Err(source.error_at(
            t.certs.span(),
            &field("certs"),
            "at least one certificate is required",
        ));
    }
    let mut resolver = SniResolver::default();
    for (j, c) in t.certs.get_ref().iter().enumerate() {
        let cfield = |f: &str| field(&format!("certs[{j}].{f}"));
        let chain = read_certs(source, &c.cert, &cfield("cert"))?;
        let key_pem = read_secret_or_file(source, &c.key, &cfield("key"))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            source.error_at(
                c.key.span(),
                &cfield("key"),
                format!("no PEM private key: {e}"),
            )
        })?;
        let certified = CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|e| {
            source.error_at(
                c.key.span(),
                &cfield("key"),
                format!(
                    "the key does not fit the certificate {}: {e}",
                    c.cert.get_ref()
                ),
            )
        })?;
        resolver.add(Arc::new(certified), &dns_names(&chain[0]));
    }

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| source.error_at(t.listen.span(), &field("min_version"), e.to_string()))?;
    let builder = match &t.client_ca {
        None => {
            if let Some(a) = &t.client_auth {
                return Err(source.error_at(
                    a.span(),
                    &field("client_auth"),
                    "client_auth needs client_ca",
                ));
            }
            builder.with_no_client_auth()
        }
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(source, ca, &field("client_ca"))? {
                roots.add(cert).map_err(|e| {
                    source.error_at(ca.span(), &field("client_ca"), format!("bad CA: {e}"))
                })?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if let Some(crl) = &t.crl {
                verifier = verifier.with_crls(read_crls(source, crl, &field("crl"))?);
            }
            match t.client_auth.as_ref().map(|a| a.get_ref().as_str()) {
                None | Some("optional") => verifier = verifier.allow_unauthenticated(),
                Some("required") => {}
                Some(other) => {
                    let a = t.client_auth.as_ref().expect("present");
                    return Err(source.error_at(
                        a.span(),
                        &field("client_auth"),
                        format!("expected \"optional\" or \"required\", not {other:?}"),
                    ));
                }
            }
            let verifier = verifier
                .build()
                .map_err(|e| source.error_at(ca.span(), &field("client_ca"), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    if t.session_tickets {
        let ticketer = if t.client_ca.is_some() {
            rustls::crypto::aws_lc_rs::Ticketer::new().ok()
        } else {
            shared_ticketer()
        };
        if let Some(ticketer) = ticketer {
            config.ticketer = ticketer;
        }
    } else {
        config.send_tls13_tickets = 0;
    }
    let hsts_line = match &t.hsts {
        None => None,
        Some(h) => {
            let v = h.get_ref();
            if v.is_empty() || v.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(source.error_at(
                    h.span(),
                    &field("hsts"),
                    "expected a header value such as \"max-age=31536000\"",
                ));
            }
            Some(format!("strict-transport-security: {v}\r\n").into())
        }
    };
    let forbid_unsafe = match t.https_only_unsafe.as_ref().map(|v| v.get_ref().as_str()) {
        None | Some("redirect") => false,
        Some("forbid") => true,
        Some(other) => {
            let v = t.https_only_unsafe.as_ref().expect("present");
            return Err(source.error_at(
                v.span(),
                &field("https_only_unsafe"),
                format!("expected \"redirect\" or \"forbid\", not {other:?}"),
            ));
        }
    };
    Ok(ServerTls {
        listen: *t.listen.get_ref(),
        config: Arc::new(config),
        hsts_line,
        handshake_timeout: t.handshake_timeout.0.max(Duration::from_millis(100)),
        https_only: t.https_only,
        forbid_unsafe,
    })
}

/// Reads the file at `path` (relative to the config file); errors name the field.
fn read_file(
    source: &Source,
    path: &Spanned<String>,
    field: &str,
) -> Result<(std::path::PathBuf, Vec<u8>), ConfigError> {
    let full = source.dir().join(path.get_ref());
    match std::fs::read(&full) {
        Ok(bytes) => Ok((full, bytes)),
        Err(e) => Err(source.error_at(
            path.span(),
            field,
            format!("cannot read {}: {e}", full.display()),
        )),
    }
}

/// Reads the PEM certificates at `path` (relative to the config file).
pub fn read_certs(
    source: &Source,
    path: &Spanned<String>,
    field: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let (full, bytes) = read_file(source, path, field)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            source.error_at(
                path.span(),
                field,
                format!("{}: bad PEM: {e}", full.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(source.error_at(
            path.span(),
            field,
            format!("{}: no PEM certificate", full.display()),
        ));
    }
    Ok(certs)
}

/// A key field: a secret reference (`file:`, `env:`) or a plain path.
fn read_secret_or_file(
    source: &Source,
    value: &Spanned<String>,
    field: &str,
) -> Result<Vec<u8>, ConfigError> {
    let v = value.get_ref();
    if v.starts_with("file:") || v.starts_with("env:") {
        return crate::config::secret::resolve(source, value, field).map(String::into_bytes);
    }
    read_file(source, value, field).map(|(_, bytes)| bytes)
}

fn read_crls(
    source: &Source,
    path: &Spanned<String>,
    field: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
    let (full, bytes) = read_file(source, path, field)?;
    let pem: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(&bytes).collect();
    match pem {
        Ok(list) if !list.is_empty() => Ok(list),
        // Not PEM: a single DER CRL.
        _ if bytes.first() == Some(&0x30) => Ok(vec![CertificateRevocationListDer::from(bytes)]),
        _ => Err(source.error_at(
            path.span(),
            field,
            format!("{}: no CRL (PEM or DER)", full.display()),
        )),
    }
}

/// The DNS names a certificate serves (its SAN entries; the CN when it has none).
fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, c)) = X509Certificate::from_der(cert) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in c.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    names
}

/// Chooses a listener's certificate by the client's SNI name: an exact name, then a
/// `*.` wildcard one label deep, then the first certificate (no SNI, or no match).
#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn add(&mut self, key: Arc<CertifiedKey>, names: &[String]) {
        if self.default.is_none() {
            self.default = Some(key.clone());
        }
        for n in names {
            // The first certificate to claim a name keeps it.
            match n.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()),
                None => self.exact.entry(n.clone()),
            }
            .or_insert_with(|| key.clone());
        }
    }

    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_for(name: &str) -> (Arc<CertifiedKey>, Vec<String>) {
        let names = vec![name.to_string()];
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names.clone())
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(kp.serialize_pem().as_bytes()).unwrap();
        let ck = CertifiedKey::from_der(vec![cert.der().clone()], key, &provider()).unwrap();
        let names = dns_names(cert.der());
        (Arc::new(ck), names)
    }

    #[test]
    fn sni_exact_wildcard_and_default() {
        let mut r = SniResolver::default();
        let (a, an) = key_for("api.example.com");
        let (w, wn) = key_for("*.example.org");
        assert_eq!(an, ["api.example.com"]);
        r.add(a.clone(), &an);
        r.add(w.clone(), &wn);
        let is = |got: Option<Arc<CertifiedKey>>, want: &Arc<CertifiedKey>| {
            Arc::ptr_eq(&got.unwrap(), want)
        };
        assert!(is(r.choose(Some("api.example.com")), &a));
        assert!(is(r.choose(Some("API.Example.COM")), &a));
        assert!(is(r.choose(Some("x.example.org")), &w));
        // One label deep only; the default otherwise.
        assert!(is(r.choose(Some("a.b.example.org")), &a));
        assert!(is(r.choose(Some("example.org")), &a));
        assert!(is(r.choose(None), &a));
    }
}
