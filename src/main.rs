//! The `dockerd` binary: decides, before anything else runs, whether this process is
//! the daemon or a re-executed container monitor (`dockerd init …`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The monitor must start from a pristine process: no runtime threads, no
    // parsed flags, nothing inherited from the daemon's setup.
    if args.get(1).is_some_and(|a| a == dockerd::init::SUBCOMMAND) {
        return ExitCode::from(dockerd::init::main(&args[2..]));
    }
    if args
        .get(1)
        .is_some_and(|a| a == dockerd::netproxy::SUBCOMMAND)
    {
        return ExitCode::from(dockerd::netproxy::main(&args[2..]));
    }
    ExitCode::from(dockerd::daemon::run(args))
}
