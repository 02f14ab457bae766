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
        if spec.driver == "journald" {
            return Journal::open(Path::new(journald::SOCKET), &spec.journal_fields)
                .map(|j| Some(Logger::Journald(j)))
                .map_err(|e| {
                    io::Error::other(format!("failed to initialize logging driver: {e}"))
                });
        }
        Ok(LogFile::open(spec)?.map(Logger::JsonFile))
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
