//! The Veza reference service: users and messages over HTTP, with every Veza crate in its
//! place (see the README). `main.rs` runs it; tests and the load test start it in-process.

pub mod app;
pub mod config;
pub mod db;
pub mod error;
pub mod input;
pub mod server;
pub mod upstream;

pub use app::{Running, start};
pub use config::{Config, Mode};
