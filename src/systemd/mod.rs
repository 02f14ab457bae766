//! The daemon's ties to systemd: sockets passed by socket activation, `sd_notify`
//! state messages, and the watchdog. Nothing here needs libsystemd.
//!
//! Everything that reads the environment ([`activation::take_from_env`],
//! [`notify::Notifier::from_env`], [`watchdog::period_from_env`]) must run before the
//! tokio runtime exists; each removes its variables so that no child process inherits them.

pub mod activation;
pub mod notify;
pub mod watchdog;

pub use activation::Activated;
pub use notify::Notifier;
