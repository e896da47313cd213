// SQL injection blacklist checker - matches C implementation exactly

use super::sqli_data;

/// Check if a fingerprint is blacklisted
/// This matches libinjection_sqli_blacklist from the C version
pub fn is_blacklisted(fingerprint: &str) -> bool {
    // Match the C version: convert v0 fingerprint to v1 format
    // v0: up to 5 chars, mixed case  
    // v1: '0' prefix, up to 5 more chars, upper case
    
    if fingerprint.is_empty() {
        return false;
    }
    
    // portcullis: "0" + the fingerprint in a stack buffer; the keyword lookup
    // upper-cases as it compares (as the copy made here did).
    let mut buf = [0u8; 16];
    let bytes = fingerprint.as_bytes();
    if bytes.len() >= buf.len() {
        return false; // fingerprints are at most 8 bytes; no longer key exists
    }
    buf[0] = b'0';
    buf[1..=bytes.len()].copy_from_slice(bytes);
    let Ok(fp2) = std::str::from_utf8(&buf[..=bytes.len()]) else {
        return false;
    };

    // Check if this fingerprint exists in the keywords table with type 'F'
    sqli_data::lookup_word(fp2) == crate::sqli::TokenType::Fingerprint
}