//! Shared helpers for the portcullis integration tests, one module per role;
//! `use common::*` brings them all in.
//!
//! Everything here uses only std (and serde_json): the gateway binary is started
//! as a child process, clients and test servers speak raw HTTP/1.1 over TcpStream.
// Each test binary uses only some of these: unused items and re-exports are fine.
#![allow(dead_code, unused_imports)]

pub mod assertions;
pub mod client;
pub mod config;
pub mod gateway;
pub mod pattern;
pub mod servers;

pub use assertions::*;
pub use client::*;
pub use config::*;
pub use gateway::*;
pub use pattern::*;
pub use servers::*;
