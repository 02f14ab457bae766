//! The daemon's ties to systemd: sockets passed by socket activation, `sd_notify`
//! state messages, and the watchdog; reading the journal (`journal`, libsystemd opened
//! at run time). Nothing else here needs libsystemd.
//!
//! [`units`] asks systemd's manager over D-Bus for the transient scope units
//! (`docker-<id>.scope`) that hold containers under the systemd cgroup driver.
//!
//! Everything that reads the environment ([`activation::take_from_env`],
//! [`notify::Notifier::from_env`], [`watchdog::period_from_env`]) must run before the
//! tokio runtime exists; each removes its variables so that no child process inherits them.

pub mod activation;
pub mod journal;
pub mod notify;
pub mod units;
pub mod watchdog;

pub use activation::Activated;
pub use notify::Notifier;
