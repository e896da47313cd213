//! An upstream's `tls = { ca, sni, verify }` → [`UpstreamTls`]: the rustls client
//! config (the given CA or the Mozilla roots, ALPN `http/1.1`, session resumption)
//! and the name sent in SNI and checked against the certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::server::{provider, read_certs};
use crate::config::{ConfigError, Source, Spanned, UpstreamTlsConfig};

/// How the gateway speaks TLS to one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// `first_target`: the upstream's first target as written (`host:port`), whose host
/// is the default SNI name.
pub fn compile(
    field: &str,
    t: &UpstreamTlsConfig,
    first_target: &Spanned<Vec<String>>,
    source: &Source,
) -> Result<UpstreamTls, ConfigError> {
    let name = match &t.sni {
        Some(s) => s.get_ref().clone(),
        None => {
            let target = first_target.get_ref().first().map_or("", String::as_str);
            let host = match target.rsplit_once(':') {
                Some((h, _)) => h,
                None => target,
            };
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    let server_name = ServerName::try_from(name.clone()).map_err(|_| {
        let span = t.sni.as_ref().map_or(first_target.span(), |s| s.span());
        source.error_at(
            span,
            &format!("{field}.sni"),
            format!("{name:?} is not a DNS name or an IP address"),
        )
    })?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| source.error_at(first_target.span(), field, e.to_string()))?;
    if !t.verify {
        tracing::warn!("{field}.verify = false: any certificate the upstream shows is accepted");
    }
    let mut config = if !t.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match &t.ca {
            Some(ca) => {
                for cert in read_certs(source, ca, &format!("{field}.ca"))? {
                    roots.add(cert).map_err(|e| {
                        source.error_at(ca.span(), &format!("{field}.ca"), format!("bad CA: {e}"))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
    })
}

/// `verify = false`: any certificate is accepted (the handshake signature is still
/// checked, so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
