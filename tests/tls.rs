//! TLS on TCP listeners with the real docker CLI as the client: mutual TLS with
//! certificates the test makes (`openssl`), clients without a certificate or with
//! one of another CA refused and logged, plain HTTP refused, `tcp://0.0.0.0` allowed
//! only with `--tlsverify`, and Docker's errors for missing files.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

const PORT: u16 = 2376;

/// The docker CLI in the daemon's network namespace, over TCP with TLS settings
/// from `cert_dir` (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), or without TLS.
fn cli(d: &Daemon, cert_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(docker_cli());
    cmd.args(args)
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{PORT}"))
        .env("DOCKER_CONFIG", d.path("docker-config"))
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    if let Some(dir) = cert_dir {
        cmd.env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", dir);
    }
    in_netns(&mut cmd, &d.netns);
    cmd.output().unwrap()
}

#[test]
fn mutual_tls_with_the_docker_cli() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let config = format!(
        r#"{{"tlsverify": true, "tlscacert": "{}", "tlscert": "{}", "tlskey": "{}"}}"#,
        certs.ca.display(),
        certs.server_cert.display(),
        certs.server_key.display()
    );
    // Any address is allowed with client verification.
    let d = Daemon::builder()
        .config(&config)
        .arg("-H")
        .arg(&format!("tcp://0.0.0.0:{PORT}"))
        .start();
    d.import_busybox(BUSYBOX_IMG);

    let o = cli(
        &d,
        Some(&certs.client),
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert_eq!(out(&o).trim(), "1.51", "{}\n{}", err(&o), d.log());
    // Hijacked streams (attach) work through TLS too.
    let o = cli(
        &d,
        Some(&certs.client),
        &[
            "run",
            "--rm",
            "--network",
            "none",
            BUSYBOX_IMG,
            "echo",
            "over tls",
        ],
    );
    assert_eq!(out(&o).trim(), "over tls", "{}", err(&o));

    // No client certificate, or one of another CA: refused, and the daemon says so.
    for (dir, what) in [
        (&certs.no_client, "no certificate"),
        (&certs.foreign_client, "another CA"),
    ] {
        let o = cli(
            &d,
            Some(dir),
            &["version", "--format", "{{.Server.APIVersion}}"],
        );
        assert!(!o.status.success(), "{what}: {}", out(&o));
        assert!(out(&o).trim().is_empty(), "{what}: {}", out(&o));
    }
    wait_for("the refused handshakes in the log", &d, || {
        d.log()
            .matches("http: TLS handshake error from 127.0.0.1:")
            .count()
            >= 2
    });
    // Plain HTTP to the TLS port gets Go's answer, which the CLI shows.
    let o = cli(&d, None, &["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(!o.status.success());
    assert!(!out(&o).contains("1.51"), "{}", out(&o));
    assert!(
        err(&o).contains("Client sent an HTTP request to an HTTPS server."),
        "{}",
        err(&o)
    );
}

#[test]
fn tls_settings_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let server = [
        "--tlscert",
        certs.server_cert.to_str().unwrap(),
        "--tlskey",
        certs.server_key.to_str().unwrap(),
    ];

    // --tlsverify=false: TLS without client certificates, loopback only.
    let mut b = Daemon::builder()
        .arg("--tlsverify=false")
        .arg("-H")
        .arg(&format!("tcp://127.0.0.1:{PORT}"));
    for a in server {
        b = b.arg(a);
    }
    let d = b.start();
    let o = cli(
        &d,
        Some(&certs.no_client),
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert_eq!(out(&o).trim(), "1.51", "{}\n{}", err(&o), d.log());
    assert!(
        d.log().contains("without client certificates"),
        "{}",
        d.log()
    );
    drop(d);

    let mut b = Daemon::builder()
        .arg("--tlsverify=false")
        .arg("-H")
        .arg(&format!("tcp://0.0.0.0:{PORT}"))
        .no_wait();
    for a in server {
        b = b.arg(a);
    }
    let mut d = b.start();
    let status = wait_timeout(&mut d.child, PATIENCE).expect("daemon should exit");
    d.stopped = Some(status);
    assert_eq!(status.code(), Some(1));
    assert!(
        d.log().contains(&format!(
            "refusing to listen on tcp://0.0.0.0:{PORT} without --tlsverify"
        )),
        "{}",
        d.log()
    );

    // Missing files stop the start with Docker's words.
    let missing = dir.path().join("nope.pem");
    let mut d = Daemon::builder()
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(certs.ca.to_str().unwrap())
        .arg("--tlscert")
        .arg(missing.to_str().unwrap())
        .arg("--tlskey")
        .arg(certs.server_key.to_str().unwrap())
        .arg("-H")
        .arg(&format!("tcp://127.0.0.1:{PORT}"))
        .no_wait()
        .start();
    let status = wait_timeout(&mut d.child, PATIENCE).expect("daemon should exit");
    d.stopped = Some(status);
    assert_eq!(status.code(), Some(1));
    let want = format!(
        "invalid TLS configuration: could not load X509 key pair (cert: {:?}, key: {:?}): open {}: no such file or directory",
        missing,
        certs.server_key,
        missing.display()
    );
    // The log line quotes its message.
    let want = want.replace('"', "\\\"");
    assert!(d.log().contains(&want), "want {want}\n{}", d.log());
}
