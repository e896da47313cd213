//! AWS Signature Version 4 verification (being written).
