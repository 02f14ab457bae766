//! dockerd, systemd-native: the Docker daemon as a first-class systemd service.
//!
//! The binary (`src/main.rs`) is a thin dispatcher; everything lives here so that
//! integration tests and the re-executed container monitor share one crate. The
//! modules follow the layering in `DESIGN.md`: `api` speaks HTTP and calls `engine`;
//! `engine` owns state and calls `image`, `runtime` and `store`; `systemd` and
//! `logging` are the daemon's ties to its service manager. `systemd` uses nothing
//! else of the crate, so any layer may call it: `runtime` for containers' scope
//! units, `engine` to read journald containers' logs.

#![recursion_limit = "256"]

pub mod api;
pub mod chunks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod image;
pub mod init;
pub mod logging;
pub mod net;
pub mod netproxy;
pub mod runtime;
pub mod store;
pub mod systemd;
pub mod timefmt;
pub mod version;
