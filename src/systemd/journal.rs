//! Reading the journal with libsystemd's sd-journal API, for `docker logs` of
//! containers with the journald log driver.
//!
//! libsystemd is opened at run time (`libsystemd.so.0`, in every systemd
//! distribution's base system) rather than linked, so the daemon builds without
//! libsystemd's development files and still runs, without journald reading, where
//! the library is missing. Only the handful of calls `docker logs` needs are bound.
//!
//! An sd-journal handle must stay on the thread that opened it: [`Journal`] is
//! neither `Send` nor `Sync`.

use std::ffi::{c_int, c_void};
use std::io;
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::time::Duration;

type Handle = *mut c_void;

/// The sd-journal functions used, resolved once.
struct Lib {
    open: unsafe extern "C" fn(*mut Handle, c_int) -> c_int,
    close: unsafe extern "C" fn(Handle),
    add_match: unsafe extern "C" fn(Handle, *const c_void, usize) -> c_int,
    seek_head: unsafe extern "C" fn(Handle) -> c_int,
    seek_tail: unsafe extern "C" fn(Handle) -> c_int,
    seek_realtime_usec: unsafe extern "C" fn(Handle, u64) -> c_int,
    next: unsafe extern "C" fn(Handle) -> c_int,
    previous: unsafe extern "C" fn(Handle) -> c_int,
    previous_skip: unsafe extern "C" fn(Handle, u64) -> c_int,
    get_realtime_usec: unsafe extern "C" fn(Handle, *mut u64) -> c_int,
    restart_data: unsafe extern "C" fn(Handle),
    enumerate_data: unsafe extern "C" fn(Handle, *mut *const c_void, *mut usize) -> c_int,
    set_data_threshold: unsafe extern "C" fn(Handle, usize) -> c_int,
    wait: unsafe extern "C" fn(Handle, u64) -> c_int,
    process: unsafe extern "C" fn(Handle) -> c_int,
}

/// What [`Journal::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing within the time.
    None,
    /// Entries were added, or files appeared or went away.
    Changed,
}

fn lib() -> io::Result<&'static Lib> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load)
        .as_ref()
        .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e.clone()))
}

/// Whether the journal can be read here (libsystemd is present).
pub fn available() -> io::Result<()> {
    lib().map(drop)
}

fn load() -> Result<Lib, String> {
    let name = c"libsystemd.so.0";
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "journald: reading the journal needs libsystemd.so.0 (Debian: libsystemd0): {}",
            dl_error()
        ));
    }
    // SAFETY (every `sym!` below): the symbol is the sd-journal function of that
    // name, whose C signature the field's type spells out.
    macro_rules! sym {
        ($name:literal) => {
            unsafe { symbol(handle, $name)? }
        };
    }
    Ok(Lib {
        open: sym!(c"sd_journal_open"),
        close: sym!(c"sd_journal_close"),
        add_match: sym!(c"sd_journal_add_match"),
        seek_head: sym!(c"sd_journal_seek_head"),
        seek_tail: sym!(c"sd_journal_seek_tail"),
        seek_realtime_usec: sym!(c"sd_journal_seek_realtime_usec"),
        next: sym!(c"sd_journal_next"),
        previous: sym!(c"sd_journal_previous"),
        previous_skip: sym!(c"sd_journal_previous_skip"),
        get_realtime_usec: sym!(c"sd_journal_get_realtime_usec"),
        restart_data: sym!(c"sd_journal_restart_data"),
        enumerate_data: sym!(c"sd_journal_enumerate_data"),
        set_data_threshold: sym!(c"sd_journal_set_data_threshold"),
        wait: sym!(c"sd_journal_wait"),
        process: sym!(c"sd_journal_process"),
    })
}

/// A function from the library as the pointer type `T`.
///
/// # Safety
/// `T` must be an `extern "C" fn` type matching the symbol's C signature.
unsafe fn symbol<T: Copy>(handle: *mut c_void, name: &std::ffi::CStr) -> Result<T, String> {
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(format!(
            "journald: libsystemd.so.0 lacks {}",
            name.to_string_lossy()
        ));
    }
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

fn dl_error() -> String {
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "not found".into()
    } else {
        unsafe { std::ffi::CStr::from_ptr(e) }
            .to_string_lossy()
            .into_owned()
    }
}

/// sd-journal's `-errno` returns as errors, what it did as `Ok(n)`.
fn check(what: &str, r: c_int) -> io::Result<c_int> {
    if r < 0 {
        let e = io::Error::from_raw_os_error(-r);
        Err(io::Error::new(e.kind(), format!("journald: {what}: {e}")))
    } else {
        Ok(r)
    }
}

/// An open view of the system's journals.
pub struct Journal {
    lib: &'static Lib,
    handle: Handle,
    /// sd-journal handles are bound to their thread.
    _not_send: PhantomData<*mut ()>,
}

impl Journal {
    /// Opens every journal of the host (system and users', as Docker does), with
    /// field data never truncated.
    pub fn open() -> io::Result<Journal> {
        let lib = lib()?;
        let mut handle: Handle = std::ptr::null_mut();
        check("error opening journal", unsafe {
            (lib.open)(&mut handle, 0)
        })?;
        let j = Journal {
            lib,
            handle,
            _not_send: PhantomData,
        };
        check("error setting the data threshold", unsafe {
            (lib.set_data_threshold)(j.handle, 0)
        })?;
        Ok(j)
    }

    /// Keeps only entries with this `FIELD=value`.
    pub fn add_match(&mut self, data: &str) -> io::Result<()> {
        check(&format!("error adding match {data:?}"), unsafe {
            (self.lib.add_match)(self.handle, data.as_ptr().cast(), data.len())
        })
        .map(drop)
    }

    pub fn seek_head(&mut self) -> io::Result<()> {
        check("error seeking to the head", unsafe {
            (self.lib.seek_head)(self.handle)
        })
        .map(drop)
    }

    pub fn seek_tail(&mut self) -> io::Result<()> {
        check("error seeking to the tail", unsafe {
            (self.lib.seek_tail)(self.handle)
        })
        .map(drop)
    }

    /// Positions before the first entry at or after `usec` (µs since the epoch).
    pub fn seek_realtime_usec(&mut self, usec: u64) -> io::Result<()> {
        check("error seeking to a time", unsafe {
            (self.lib.seek_realtime_usec)(self.handle, usec)
        })
        .map(drop)
    }

    /// Moves to the next entry; `false` at the end.
    pub fn next_entry(&mut self) -> io::Result<bool> {
        check("error reading the next entry", unsafe {
            (self.lib.next)(self.handle)
        })
        .map(|n| n > 0)
    }

    /// Moves to the previous entry; `false` at the start.
    pub fn previous_entry(&mut self) -> io::Result<bool> {
        check("error reading the previous entry", unsafe {
            (self.lib.previous)(self.handle)
        })
        .map(|n| n > 0)
    }

    /// Moves back up to `n` entries; returns how many it moved.
    pub fn previous_skip(&mut self, n: u64) -> io::Result<u64> {
        check("error skipping back", unsafe {
            (self.lib.previous_skip)(self.handle, n)
        })
        .map(|n| n as u64)
    }

    /// When journald received the current entry, in µs since the epoch.
    pub fn realtime_usec(&mut self) -> io::Result<u64> {
        let mut usec = 0u64;
        check("error reading the entry's time", unsafe {
            (self.lib.get_realtime_usec)(self.handle, &mut usec)
        })?;
        Ok(usec)
    }

    /// The current entry's fields, `FIELD=value` split at the first `=`.
    pub fn fields(&mut self) -> io::Result<Vec<(String, Vec<u8>)>> {
        unsafe { (self.lib.restart_data)(self.handle) };
        let mut out = Vec::new();
        loop {
            let mut data: *const c_void = std::ptr::null();
            let mut len = 0usize;
            let r = check("error reading the entry's fields", unsafe {
                (self.lib.enumerate_data)(self.handle, &mut data, &mut len)
            })?;
            if r == 0 {
                return Ok(out);
            }
            // SAFETY: sd-journal hands out `len` bytes valid until the next call.
            let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
            if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
                out.push((
                    String::from_utf8_lossy(&bytes[..eq]).into_owned(),
                    bytes[eq + 1..].to_vec(),
                ));
            }
        }
    }

    /// Waits up to `timeout` for the journal to change.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Change> {
        let usec = timeout.as_micros().min(u64::MAX as u128 - 1) as u64;
        let r = check("error waiting for the journal", unsafe {
            (self.lib.wait)(self.handle, usec)
        })?;
        Ok(if r == 0 {
            Change::None
        } else {
            Change::Changed
        })
    }

    /// Lets sd-journal close rotated and deleted files while reading long logs.
    pub fn process(&mut self) {
        unsafe { (self.lib.process)(self.handle) };
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        unsafe { (self.lib.close)(self.handle) };
    }
}
