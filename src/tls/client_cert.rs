//! What a verified client certificate says, in the forms the gateway uses: the
//! subject as an RFC 4514 string (`CN=billing,O=Acme`), the subject alternative
//! names (`DNS:a.example`, `URI:spiffe://…`, `email:…`, `IP:…`) and the SHA-256 of
//! the certificate. Read once per connection, after rustls has verified the chain;
//! the `mtls` authorizer matches against it and the upstream gets it as
//! `x-client-cert-*` headers.

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

/// The facts of one verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// RFC 4514 order (most specific first), e.g. `CN=billing,O=Acme,C=US`.
    pub subject: String,
    /// The subject's attributes as (short name, value), for matching.
    attributes: Vec<(String, String)>,
    /// `TYPE:value` each.
    pub sans: Vec<String>,
    /// Lowercase hex of the SHA-256 of the DER certificate.
    pub sha256: String,
    /// The `x-client-cert-*` header lines for the upstream.
    pub header_lines: String,
}

impl ClientCert {
    /// Reads the facts of a DER certificate (already verified by rustls).
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let attributes = attributes(cert.subject());
        let subject = attributes
            .iter()
            .map(|(k, v)| format!("{k}={}", escape_value(v)))
            .collect::<Vec<_>>()
            .join(",");
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(s) => sans.push(format!("DNS:{s}")),
                    GeneralName::RFC822Name(s) => sans.push(format!("email:{s}")),
                    GeneralName::URI(s) => sans.push(format!("URI:{s}")),
                    GeneralName::IPAddress(b) => {
                        if let Some(ip) = ip_of(b) {
                            sans.push(format!("IP:{ip}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        let sha256 = crate::hex::encode(&Sha256::digest(der)[..]);
        let mut header_lines = String::new();
        for (name, value) in [
            ("x-client-cert-subject", subject.as_str()),
            // Commas inside a value are escaped so the list stays unambiguous.
            (
                "x-client-cert-san",
                &sans
                    .iter()
                    .map(|s| s.replace('%', "%25").replace(',', "%2C"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("x-client-cert-sha256", &sha256),
        ] {
            header_lines.push_str(name);
            header_lines.push_str(": ");
            header_lines.extend(value.chars().map(header_safe));
            header_lines.push_str("\r\n");
        }
        Some(ClientCert {
            subject,
            attributes,
            sans,
            sha256,
            header_lines,
        })
    }

    /// Whether `pattern` names this certificate: `K=V[,K=V…]` needs each attribute
    /// in the subject (`CN=billing` matches `CN=billing,O=Acme`); `DNS:`, `URI:`,
    /// `email:` or `IP:` followed by a value needs that exact SAN; any other text
    /// must equal a SAN's value.
    pub fn matches(&self, pattern: &str) -> bool {
        if let Some((kind, value)) = pattern.split_once(':') {
            if matches!(kind, "DNS" | "URI" | "email" | "IP") {
                // DNS names compare without case; URIs (SPIFFE ids) and the rest exactly.
                return self.sans.iter().any(|s| {
                    s.split_once(':').is_some_and(|(k, v)| {
                        k == kind
                            && (v == value || (kind == "DNS" && v.eq_ignore_ascii_case(value)))
                    })
                });
            }
        }
        if pattern.contains('=') {
            return split_unescaped(pattern).iter().all(|part| {
                part.split_once('=').is_some_and(|(k, v)| {
                    let (k, v) = (k.trim(), unescape_value(v.trim()));
                    self.attributes
                        .iter()
                        .any(|(ak, av)| ak.eq_ignore_ascii_case(k) && *av == v)
                })
            });
        }
        self.sans
            .iter()
            .any(|s| s.split_once(':').is_some_and(|(_, v)| v == pattern))
    }
}

/// The subject's attributes, most specific first (RFC 4514 reverses the DER order).
fn attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rdn in name.iter_rdn().collect::<Vec<_>>().into_iter().rev() {
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.6" => "C",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "2.5.4.9" => "STREET",
                "2.5.4.5" => "serialNumber",
                "0.9.2342.19200300.100.1.25" => "DC",
                "0.9.2342.19200300.100.1.1" => "UID",
                "1.2.840.113549.1.9.1" => "emailAddress",
                _ => "",
            };
            let key = if key.is_empty() { oid } else { key.to_string() };
            let value = match atv.as_str() {
                Ok(s) => s.to_string(),
                Err(_) => format!("#{}", crate::hex::encode(atv.attr_value().data)),
            };
            out.push((key, value));
        }
    }
    out
}

/// RFC 4514 §2.4 escaping of an attribute value.
fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut escaped = false;
    for c in v.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Splits `CN=a\,b,O=c` at commas that are not escaped.
fn split_unescaped(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'\\' if !escaped => escaped = true,
            b',' if !escaped => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    parts.push(&s[start..]);
    parts
}

fn ip_of(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(<[u8; 4]>::try_from(b).ok()?.into()),
        16 => Some(<[u8; 16]>::try_from(b).ok()?.into()),
        _ => None,
    }
}

/// Header values carry no control characters, whatever a certificate holds.
fn header_safe(c: char) -> char {
    if c.is_control() {
        '?'
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, org: Option<&str>, sans: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // DER order as CAs write it (O before CN); RFC 4514 strings reverse it.
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(o) = org {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, o);
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for s in sans {
            params.subject_alt_names.push(match s.split_once(':') {
                Some(("URI", v)) => rcgen::SanType::URI(v.try_into().unwrap()),
                Some(("email", v)) => rcgen::SanType::Rfc822Name(v.try_into().unwrap()),
                Some(("IP", v)) => rcgen::SanType::IpAddress(v.parse().unwrap()),
                _ => rcgen::SanType::DnsName(s.to_string().try_into().unwrap()),
            });
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_in_rfc4514_order_and_sans() {
        let der = cert(
            "billing",
            Some("Acme, Inc"),
            &[
                "billing.internal",
                "URI:spiffe://acme/billing",
                "IP:10.0.0.7",
            ],
        );
        let c = ClientCert::from_der(&der).unwrap();
        assert_eq!(c.subject, "CN=billing,O=Acme\\, Inc");
        assert_eq!(
            c.sans,
            [
                "DNS:billing.internal",
                "URI:spiffe://acme/billing",
                "IP:10.0.0.7"
            ]
        );
        assert_eq!(c.sha256, crate::hex::encode(&Sha256::digest(&der)[..]));
        assert!(c.header_lines.starts_with(
            "x-client-cert-subject: CN=billing,O=Acme\\, Inc\r\nx-client-cert-san: DNS:billing.internal,URI:spiffe://acme/billing,IP:10.0.0.7\r\nx-client-cert-sha256: "
        ));
    }

    #[test]
    fn matching() {
        let c = ClientCert::from_der(&cert(
            "billing",
            Some("Acme, Inc"),
            &["billing.internal", "URI:spiffe://acme/billing"],
        ))
        .unwrap();
        assert!(c.matches("CN=billing"));
        assert!(c.matches("cn=billing"));
        assert!(c.matches("CN=billing,O=Acme\\, Inc"));
        assert!(c.matches("O=Acme\\, Inc"));
        assert!(!c.matches("CN=bill"));
        assert!(!c.matches("CN=billing,O=Other"));
        assert!(c.matches("DNS:billing.internal"));
        assert!(!c.matches("URI:billing.internal"));
        assert!(c.matches("DNS:Billing.Internal"));
        assert!(!c.matches("URI:spiffe://acme/Billing"));
        assert!(c.matches("spiffe://acme/billing"));
        assert!(c.matches("billing.internal"));
        assert!(!c.matches("orders.internal"));
    }

    #[test]
    fn control_characters_never_reach_headers() {
        let c = ClientCert::from_der(&cert("evil\r\nx-admin: 1", None, &[])).unwrap();
        assert!(!c.header_lines.contains("\r\nx-admin"));
        assert_eq!(c.header_lines.matches("\r\n").count(), 3);
    }

    #[test]
    fn garbage_is_none() {
        assert!(ClientCert::from_der(b"not a certificate").is_none());
    }
}
