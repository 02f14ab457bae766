//! The container's log, whichever driver keeps it: the json-file log (`logfile`) or
//! journald (`journald`). The monitor hands every entry here.

use std::io;
use std::path::Path;

use super::journald::{self, Journal};
use super::logfile::{Entry, LogFile, Stream};
use super::spec::LogSpec;

pub enum Logger {
    JsonFile(LogFile),
    Journald(Journal),
}

impl Logger {
    /// Opens the log `spec` names; `None` for the `none` driver. journald missing is
    /// Docker's `failed to initialize logging driver: …`.
    pub fn open(spec: &LogSpec) -> io::Result<Option<Logger>> {
        match spec.driver.as_str() {
            "none" => Ok(None),
            "json-file" | "" => Ok(Some(Logger::JsonFile(LogFile::open(spec)?))),
            "journald" => Journal::open(Path::new(journald::SOCKET), &spec.journal_fields)
                .map(|j| Some(Logger::Journald(j)))
                .map_err(|e| io::Error::other(format!("failed to initialize logging driver: {e}"))),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "logging driver {other:?} is not supported by the container monitor (use json-file, journald or none)"
                ),
            )),
        }
    }

    /// Logs one entry. journald drops what it cannot take and goes on; only the file
    /// fails.
    pub fn write(&mut self, entry: &Entry<'_>, stream: Stream) -> io::Result<()> {
        match self {
            Logger::JsonFile(f) => f.write(entry, stream),
            Logger::Journald(j) => {
                j.write(entry, stream);
                Ok(())
            }
        }
    }

    /// Writes what the file log buffers (journald sends at once).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Logger::JsonFile(f) => f.flush(),
            Logger::Journald(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_driver_has_no_file_and_unknown_driver_is_refused() {
        let spec = LogSpec {
            driver: "none".into(),
            path: std::path::PathBuf::from("/nonexistent/x.log"),
            max_size: None,
            max_file: 1,
            journal_fields: Vec::new(),
        };
        assert!(Logger::open(&spec).unwrap().is_none());
        let spec = LogSpec {
            driver: "syslog".into(),
            ..spec
        };
        let err = Logger::open(&spec).err().unwrap();
        assert!(err.to_string().contains("syslog"), "{err}");
    }
}
