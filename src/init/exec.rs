//! Finding the command in the container's `PATH` and describing why it cannot run, in
//! the words Docker's runtime uses (`exec: "x": executable file not found in $PATH`).
//! The docker CLI turns those words into `docker run`'s exit status: 127 for a command
//! that is not found, 126 for one that cannot be executed.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use super::sys;

/// Why the command cannot start: Docker's message and the exit status it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFailure {
    pub message: String,
    pub exit_code: i32,
}

/// Exit status for a command that does not exist.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status for a command that exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;

/// Go's `exec.LookPath` against `path_env` (the container's `PATH`), run as the
/// container's user after pivot_root.
pub fn look_path(name: &str, path_env: &str) -> Result<PathBuf, ExecFailure> {
    let fail = |reason: String, exit_code| ExecFailure {
        message: format!("exec: {}: {reason}", go_quote(name)),
        exit_code,
    };
    if name.contains('/') {
        return match check_executable(Path::new(name)) {
            Ok(()) => Ok(PathBuf::from(name)),
            Err(e) => {
                let code = exit_code_for(&e);
                Err(fail(e.message, code))
            }
        };
    }
    if !name.is_empty() {
        for dir in path_env.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = Path::new(dir).join(name);
            if check_executable(&candidate).is_ok() {
                if !candidate.is_absolute() {
                    return Err(fail(
                        "cannot run executable found relative to current directory".into(),
                        EXIT_CANNOT_EXECUTE,
                    ));
                }
                return Ok(candidate);
            }
        }
    }
    Err(fail(
        "executable file not found in $PATH".into(),
        EXIT_NOT_FOUND,
    ))
}

/// Why a file is not executable, with the errno that said so.
struct NotExecutable {
    message: String,
    errno: i32,
}

fn exit_code_for(e: &NotExecutable) -> i32 {
    match e.errno {
        libc::ENOENT | libc::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    }
}

/// Go's `findExecutable`: the file exists, is not a directory and is executable for
/// the effective user.
fn check_executable(path: &Path) -> Result<(), NotExecutable> {
    let meta = std::fs::metadata(path).map_err(|e| NotExecutable {
        message: format!(
            "stat {}: {}",
            path.display(),
            crate::store::strip_os_suffix(&e)
        ),
        errno: e.raw_os_error().unwrap_or(libc::ENOENT),
    })?;
    if meta.is_dir() {
        return Err(NotExecutable {
            message: "is a directory".into(),
            errno: libc::EISDIR,
        });
    }
    let c = sys::cpath(path).map_err(|e| NotExecutable {
        message: e.to_string(),
        errno: libc::EINVAL,
    })?;
    let r = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    Err(NotExecutable {
        message: crate::store::strip_os_suffix(&e),
        errno: e.raw_os_error().unwrap_or(libc::EACCES),
    })
}

/// `execve` failed after the lookup succeeded (a bad binary format, a missing
/// interpreter): `exec /bin/x: exec format error`.
pub fn exec_failure(path: &Path, err: &io::Error) -> ExecFailure {
    let exit_code = match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    };
    ExecFailure {
        message: format!(
            "exec {}: {}",
            path.display(),
            crate::store::strip_os_suffix(err)
        ),
        exit_code,
    }
}

/// Replaces the process with `path`; returns only on failure.
pub fn execve(path: &Path, args: &[String], env: &[String]) -> io::Error {
    let to_c =
        |v: &[String]| -> io::Result<Vec<CString>> { v.iter().map(|s| sys::cstring(s)).collect() };
    let (p, argv, envp) = match (sys::cpath(path), to_c(args), to_c(env)) {
        (Ok(p), Ok(a), Ok(e)) => (p, a, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    unsafe { libc::execve(p.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// The value of `key` in `KEY=value` entries.
pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// Go's `strconv.Quote` for the names that appear in exec errors.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn not_in_path_is_127_with_dockers_message() {
        let e = look_path("nosuch-command-xyz", "/usr/bin:/bin").unwrap_err();
        assert_eq!(
            e.message,
            "exec: \"nosuch-command-xyz\": executable file not found in $PATH"
        );
        assert_eq!(e.exit_code, 127);
    }

    #[test]
    fn missing_absolute_path_is_127_with_stat_error() {
        let e = look_path("/nope/x", "/bin").unwrap_err();
        assert_eq!(
            e.message,
            "exec: \"/nope/x\": stat /nope/x: no such file or directory"
        );
        assert_eq!(e.exit_code, 127);
    }

    #[test]
    fn directories_and_non_executables_are_126() {
        let dir = tempfile::tempdir().unwrap();
        let e = look_path(dir.path().to_str().unwrap(), "").unwrap_err();
        assert!(e.message.ends_with(": is a directory"), "{}", e.message);
        assert_eq!(e.exit_code, 126);
        let f = dir.path().join("data");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = look_path(f.to_str().unwrap(), "").unwrap_err();
        assert_eq!(
            e.message,
            format!("exec: \"{}\": permission denied", f.display())
        );
        assert_eq!(e.exit_code, 126);
    }

    #[test]
    fn path_search_finds_the_first_executable() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("tool"), b"").unwrap();
        std::fs::write(b.join("tool"), b"").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(look_path("tool", &path).unwrap(), b.join("tool"));
    }

    #[test]
    fn env_lookup_and_quoting() {
        let env = vec!["PATH=/a".to_string(), "PATHX=1".into(), "PATH=/b".into()];
        assert_eq!(env_value(&env, "PATH"), Some("/b"));
        assert_eq!(env_value(&env, "HOME"), None);
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
