//! `docker build` with the classic builder, driven by the real docker CLI
//! (`DOCKER_BUILDKIT=0 docker build`, and plain `docker build`, which chooses the
//! classic builder when no buildx plugin is installed) on the Dockerfiles in
//! `tests/data/build/`.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn dockerfile(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/build")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A context directory with `Dockerfile` and `files`.
fn context(df: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), df).unwrap();
    for (name, data) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    dir
}

fn build(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let dir = dir.to_str().unwrap();
    all.push(dir);
    let mut c = d.docker_cmd(&all);
    c.env("DOCKER_BUILDKIT", "0");
    c.output().unwrap()
}

fn build_ok(d: &Daemon, dir: &Path, args: &[&str]) -> String {
    let o = build(d, dir, args);
    assert!(
        o.status.success(),
        "docker build {args:?} failed ({}):\n{}\n{}\n--- daemon log ---\n{}",
        o.status,
        out(&o),
        err(&o),
        d.log()
    );
    out(&o)
}

fn run(d: &Daemon, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", image];
    args.extend_from_slice(cmd);
    d.docker_ok(&args)
}

fn image_id(d: &Daemon, name: &str) -> String {
    field(d, name, "{{.Id}}")
}

fn history(d: &Daemon, name: &str) -> Vec<String> {
    d.docker_ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", name])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_instruction_then_the_cache() {
    let d = daemon_with_busybox();
    let ctx = context(
        &dockerfile("features.Dockerfile"),
        &[("a.txt", b"a\n"), ("dir/b.txt", b"b\n")],
    );
    // The modes are part of the content hash: the same whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [("a.txt", 0o644), ("dir/b.txt", 0o644), ("dir", 0o755)] {
        std::fs::set_permissions(ctx.path().join(p), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }
    let o = build_ok(&d, ctx.path(), &["-t", "feat"]);
    for want in [
        "Step 1/16 : FROM test/busybox:1",
        "Step 5/16 : RUN echo \"$GREETING\" > /greeting && echo to-stdout && echo to-stderr >&2",
        " ---> Running in ",
        "to-stdout",
        "to-stderr",
        "Removing intermediate container ",
        "Successfully built ",
        "Successfully tagged feat:latest",
    ] {
        assert!(o.contains(want), "{want:?} missing from:\n{o}");
    }
    assert!(!o.contains("Using cache"), "{o}");
    assert_eq!(
        run(&d, "feat", &[]),
        "hello world\n/app/sub\n65534\na.txt\nb.txt\n"
    );

    let c = &inspect(&d, "feat")["Config"];
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["cat /greeting; pwd; id -u; ls"])
    );
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "8080/tcp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["Labels"]["org.test.kind"], "build test");
    assert_eq!(c["Labels"]["other"], "x");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000i64, "Retries": 3})
    );
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hello world".to_string()), "{env:?}");
    assert!(env.contains(&"EMPTY=".to_string()), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("WHO=")), "{env:?}");

    let h = history(&d, "feat");
    for want in [
        "/bin/sh -ec #(nop)  CMD [\"cat /greeting; pwd; id -u; ls\"]",
        "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]",
        "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"30s\" \"0s\" \"0s\" '\\x03'}",
        "/bin/sh -c #(nop)  EXPOSE 53/udp 8080",
        "/bin/sh -c #(nop)  VOLUME [/data]",
        "/bin/sh -c #(nop) WORKDIR /app/sub",
        "|1 WHO=world /bin/sh -c echo \"$GREETING\" > /greeting && echo to-stdout && echo to-stderr >&2",
        "/bin/sh -c #(nop)  LABEL org.test.kind=build test other=x",
        "/bin/sh -c #(nop)  ENV GREETING=hello world EMPTY=",
        "/bin/sh -c #(nop)  ARG WHO=world",
    ] {
        assert!(h.iter().any(|l| l == want), "{want:?} missing from {h:#?}");
    }
    // The content hash Docker Engine 20.10 writes for the same context (the CLI
    // sends the same tar to both; checked against it).
    assert!(
        h.iter().any(|l| l
            == "/bin/sh -c #(nop) COPY multi:01b610444cef554c0d643d7cf2ac68afbeae33be6fefeebc9d1f5cd72ca836f5 in ./ "),
        "{h:#?}"
    );
    // Each step's image is there (its parent chain), not <missing>.
    let ids = d.docker_ok(&["history", "-q", "feat"]);
    assert!(!ids.contains("<missing>"), "{ids}");
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "intermediate containers left"
    );

    // The same build again: every step from the cache, the same image.
    let id = image_id(&d, "feat");
    let o = build_ok(&d, ctx.path(), &["-t", "feat"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 15, "{o}");
    assert!(!o.contains("Running in"), "{o}");
    assert_eq!(image_id(&d, "feat"), id);

    // A new modification time alone keeps the cache; new content misses from
    // the COPY on.
    let a = ctx.path().join("a.txt");
    let f = std::fs::File::options().write(true).open(&a).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(f);
    let o = build_ok(&d, ctx.path(), &["-t", "feat"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 15, "{o}");
    std::fs::write(&a, "changed\n").unwrap();
    let o = build_ok(&d, ctx.path(), &["-t", "feat"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 6, "{o}");
    let copy_step = o.split("Step 8/16 : COPY a.txt dir/ ./\n").nth(1).unwrap();
    assert!(!copy_step.starts_with(" ---> Using cache"), "{o}");
    assert_ne!(image_id(&d, "feat"), id);

    // A build argument is part of the RUN's key.
    let o = build_ok(&d, ctx.path(), &["--build-arg", "WHO=you", "-t", "you"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 1, "{o}");
    assert!(run(&d, "you", &[]).starts_with("hello you\n"));

    // --no-cache consults nothing.
    let o = build_ok(&d, ctx.path(), &["--no-cache", "-t", "fresh"]);
    assert!(!o.contains("Using cache"), "{o}");

    // The cache is the image store: it survives a restart.
    let d = d.restart();
    let o = build_ok(&d, ctx.path(), &["-t", "feat"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 15, "{o}");
}

#[test]
fn arguments_shadowing_splitting_and_escape() {
    let d = daemon_with_busybox();
    let ctx = context(
        "# escape=`\nFROM test/busybox:1\nARG PORTS=\"80 443/udp\"\nARG A=1\nENV A=2\nEXPOSE $PORTS\nRUN echo \"a=$A\" > /a\nENV WIN=C:\\dir `\n    NEXT=`$literal\n",
        &[],
    );
    build_ok(&d, ctx.path(), &["-t", "args"]);
    let c = &inspect(&d, "args")["Config"];
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"443/udp": {}, "80/tcp": {}})
    );
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"WIN=C:\\dir".to_string()), "{env:?}");
    assert!(env.contains(&"NEXT=$literal".to_string()), "{env:?}");
    assert_eq!(run(&d, "args", &["cat", "/a"]), "a=2\n");
    // The ENV shadows the ARG: the RUN's history carries no arguments but PORTS.
    let h = history(&d, "args");
    assert!(
        h.iter()
            .any(|l| l == "|1 PORTS=80 443/udp /bin/sh -c echo \"a=$A\" > /a"),
        "{h:#?}"
    );
}

#[test]
fn multi_stage_with_copy_from_and_target() {
    let d = daemon_with_busybox();
    let ctx = context(
        &dockerfile("multistage.Dockerfile"),
        &[("data/f", b"f\n"), ("data/sub/g", b"g\n")],
    );
    let o = build_ok(&d, ctx.path(), &["-t", "multi"]);
    assert!(o.contains("Step 1/11 : ARG BASE=test/busybox:1"), "{o}");
    assert_eq!(
        run(
            &d,
            "multi",
            &[
                "sh",
                "-c",
                "cat /final/result /final/other; stat -c '%u:%g %a %n' /owned /owned/f /owned/sub/g; cmp /bin/busybox /copied-busybox && echo same"
            ]
        ),
        "built\nother\n1234:1234 755 /owned\n1234:1234 644 /owned/f\n1234:1234 644 /owned/sub/g\nsame\n"
    );
    // The stages other than the last are left as untagged images, as Docker
    // leaves them.
    let dangling = d.docker_ok(&["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.lines().count(), 2, "{dangling}");
    // `image prune` takes them; the steps of the tagged image stay, as its cache.
    d.docker_ok(&["image", "prune", "-f"]);
    let dangling = d.docker_ok(&["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling, "");
    let o = build_ok(&d, ctx.path(), &["-t", "multi"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 5, "{o}");

    // --target stops at the named stage.
    let o = build_ok(&d, ctx.path(), &["--target", "build", "-t", "only-build"]);
    assert!(o.contains("Step 3/3 : RUN mkdir /out"), "{o}");
    assert!(!o.contains("Step 4/"), "{o}");
    assert_eq!(
        run(
            &d,
            "only-build",
            &["sh", "-c", "cat /out/result; ls /final 2>&1 || true"]
        ),
        "built\nls: /final: No such file or directory\n"
    );
}

fn gzip_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_uid(7);
        h.set_gid(8);
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn context_archives_wildcards_and_dockerignore() {
    let d = daemon_with_busybox();
    let pkg = gzip_tar(&[("pkg/sub/f1", b"p1\n")]);
    let mut notar = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut notar, b"just text\n").unwrap();
    let notar = notar.finish().unwrap();
    let ctx = context(
        &dockerfile("context.Dockerfile"),
        &[
            ("pkg.tgz", &pkg),
            ("notar.txt.gz", &notar),
            ("one.txt", b"1\n"),
            ("two.txt", b"2\n"),
            ("secret.txt", b"s\n"),
            ("sub/three.txt", b"3\n"),
            (
                ".dockerignore",
                b"# not sent\nsecret.txt\nDockerfile\n.dockerignore\n",
            ),
        ],
    );
    // A symlink in the context stays inside it.
    std::os::unix::fs::symlink("/etc/hostname", ctx.path().join("evil")).unwrap();
    // A FIFO is copied as a FIFO, never opened.
    let fifo = std::ffi::CString::new(ctx.path().join("pipe").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    build_ok(&d, ctx.path(), &["-t", "ctx"]);
    assert_eq!(
        run(
            &d,
            "ctx",
            &[
                "sh",
                "-c",
                "cd / && find ctx t unpacked raw | sort; stat -c '%u:%g %a' /unpacked/pkg/sub/f1; readlink /ctx/evil; test -p /pipe && echo fifo"
            ]
        ),
        "ctx\nctx/evil\nctx/notar.txt.gz\nctx/one.txt\nctx/pipe\nctx/pkg.tgz\nctx/sub\nctx/sub/three.txt\nctx/two.txt\nraw\nraw/notar.txt.gz\nt\nt/one.txt\nt/two.txt\nunpacked\nunpacked/pkg\nunpacked/pkg/sub\nunpacked/pkg/sub/f1\n7:8 640\n/etc/hostname\nfifo\n"
    );

    // Without .dockerignore naming it, the Dockerfile is part of the context.
    std::fs::write(ctx.path().join(".dockerignore"), "secret.txt\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM test/busybox:1\nCOPY . /ctx/\n",
    )
    .unwrap();
    build_ok(&d, ctx.path(), &["-t", "ctx2"]);
    assert_eq!(
        run(&d, "ctx2", &["ls", "-a", "/ctx"]),
        ".\n..\n.dockerignore\nDockerfile\nevil\nnotar.txt.gz\none.txt\npipe\npkg.tgz\nsub\ntwo.txt\n"
    );

    for (df, want) in [
        (
            "COPY secret.txt /x",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat secret.txt: file does not exist",
        ),
        (
            "COPY evil /x",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat evil: file does not exist",
        ),
        (
            "COPY ../outside /x",
            "COPY failed: forbidden path outside the build context: ../outside ()",
        ),
        (
            "COPY nothing* /x/",
            "COPY failed: no source files were specified",
        ),
        (
            "COPY one.txt two.txt /x",
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ),
        (
            "COPY --chmod=755 one.txt /x",
            "the --chmod option requires BuildKit",
        ),
        (
            "COPY --chown=nosuch one.txt /x",
            "unable to convert uid/gid chown string to host mapping: can't find uid for user nosuch: no such user: nosuch",
        ),
    ] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM test/busybox:1\n{df}\n"),
        )
        .unwrap();
        let o = build(&d, ctx.path(), &[]);
        assert_eq!(o.status.code(), Some(1), "{df}: {}", out(&o));
        assert!(err(&o).contains(want), "{df}: {}", err(&o));
    }
}

#[test]
fn add_downloads_a_url() {
    require_tool("busybox", "apt-get install -y busybox-static");
    let d = daemon_with_busybox();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("file.txt"), "downloaded\n").unwrap();
    std::fs::write(www.path().join("pkg.tgz"), gzip_tar(&[("inside", b"x\n")])).unwrap();
    let port = 18000 + (std::process::id() % 1000) as u16;
    let mut httpd = d
        .host_cmd(
            "busybox",
            &[
                "httpd",
                "-f",
                "-p",
                &format!("127.0.0.1:{port}"),
                "-h",
                www.path().to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/file.txt");
    wait_for("the HTTP server", &d, || {
        d.http_get_from_host(&url).is_some()
    });
    let ctx = context(
        &format!(
            "FROM test/busybox:1\nADD {url} /d/\nADD {url} /named\nADD http://127.0.0.1:{port}/pkg.tgz /dl/\n"
        ),
        &[],
    );
    build_ok(&d, ctx.path(), &["-t", "dl"]);
    assert_eq!(
        run(
            &d,
            "dl",
            &[
                "sh",
                "-c",
                "cat /d/file.txt; stat -c '%a %u' /d/file.txt /named; ls /dl"
            ]
        ),
        // A downloaded archive is not unpacked.
        "downloaded\n600 0\n600 0\npkg.tgz\n"
    );
    // Downloaded again on each build; the same content is a cache hit.
    let o = build_ok(&d, ctx.path(), &["-t", "dl"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 3, "{o}");

    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM test/busybox:1\nADD http://127.0.0.1:{port}/nope /d/\n"),
    )
    .unwrap();
    let o = build(&d, ctx.path(), &[]);
    assert!(
        err(&o).contains(&format!(
            "failed to GET http://127.0.0.1:{port}/nope with status 404 Not Found"
        )),
        "{}",
        err(&o)
    );
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM test/busybox:1\nCOPY {url} /d/\n"),
    )
    .unwrap();
    let o = build(&d, ctx.path(), &[]);
    assert!(
        err(&o).contains("COPY failed: source can't be a URL for COPY"),
        "{}",
        err(&o)
    );
    let _ = httpd.kill();
    let _ = httpd.wait();
}

#[test]
fn failures_carry_dockers_words_and_exit_codes() {
    let d = daemon_with_busybox();
    let ctx = context("FROM test/busybox:1\nRUN echo before\nRUN exit 23\n", &[]);
    let o = build(&d, ctx.path(), &[]);
    assert_eq!(o.status.code(), Some(23), "{}", err(&o));
    assert!(
        err(&o).contains("The command '/bin/sh -c exit 23' returned a non-zero code: 23"),
        "{}",
        err(&o)
    );
    // The failed step's container stays for inspection, as with Docker...
    assert_eq!(
        d.docker_ok(&["ps", "-a", "--format", "{{.Status}}"])
            .lines()
            .filter(|l| l.starts_with("Exited (23)"))
            .count(),
        1
    );
    // ...unless --force-rm.
    let o = build(&d, ctx.path(), &["--force-rm"]);
    assert_eq!(o.status.code(), Some(23));
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 1);

    for (df, want) in [
        (
            "FROM test/busybox:1\n\n# comment\nNOPE x\n",
            "dockerfile parse error line 4: unknown instruction: NOPE",
        ),
        (
            "FROM test/busybox:1\nRUN <<EOF\necho hi\nEOF\n",
            "heredocs (<<EOF) are not supported by the classic builder",
        ),
        ("", "the Dockerfile (Dockerfile) cannot be empty"),
        ("RUN true\n", "no build stage in current context"),
        (
            "FROM test/busybox:1\nRUN --mount=type=cache,target=/x true\n",
            "the --mount option requires BuildKit",
        ),
        (
            "FROM test/busybox:1\nENV A=${NOPE:?unset}\n",
            "failed to process \"${NOPE:?unset}\": NOPE: unset",
        ),
        (
            "FROM test/busybox:1\nSTOPSIGNAL SIGNOPE\n",
            "Invalid signal: SIGNOPE",
        ),
        (
            "FROM scratch\nRUN true\n",
            "the stage has no files yet (FROM scratch)",
        ),
    ] {
        std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
        let o = build(&d, ctx.path(), &[]);
        assert_eq!(o.status.code(), Some(1), "{df}: {}", out(&o));
        assert!(err(&o).contains(want), "{df}: {}", err(&o));
    }
    std::fs::write(ctx.path().join("Dockerfile"), "FROM test/busybox:1\n").unwrap();
    let o = build(&d, ctx.path(), &["--target", "nope"]);
    assert!(
        err(&o).contains("failed to reach build target nope in Dockerfile"),
        "{}",
        err(&o)
    );

    // Refusals before any output are HTTP errors.
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let df = b"FROM test/busybox:1\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(df.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "Dockerfile", &df[..]).unwrap();
        b.into_inner().unwrap()
    };
    for (query, status, want) in [
        (
            "squash=1",
            400,
            "squash is only supported with experimental mode",
        ),
        (
            "version=2",
            400,
            "BuildKit (builder version 2) is not supported",
        ),
        ("buildargs=%7Bx", 400, "error reading build args: "),
        (
            "dockerfile=nope",
            500,
            "Cannot locate specified Dockerfile: nope",
        ),
        ("t=Bad%3Aname", 400, "invalid reference format"),
        (
            "remote=https%3A%2F%2Fexample.com%2Fx.tar",
            501,
            "remote build contexts",
        ),
    ] {
        let r = d.request(
            "POST",
            &format!("/v1.51/build?{query}"),
            Some(("application/x-tar", &tar)),
        );
        assert_eq!(r.status, status, "{query}: {}", r.text());
        assert!(
            r.json()["message"].as_str().unwrap().contains(want),
            "{query}: {}",
            r.text()
        );
    }
    // A good build over the raw API: Docker's stream, ending with the ID.
    let r = d.request(
        "POST",
        "/v1.51/build?t=raw",
        Some(("application/x-tar", &tar)),
    );
    assert_eq!(r.status, 200);
    let lines: Vec<serde_json::Value> = r
        .text()
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["stream"], "Step 1/1 : FROM test/busybox:1");
    assert_eq!(lines[1]["stream"], "\n");
    let aux = lines.iter().find_map(|l| l["aux"]["ID"].as_str()).unwrap();
    assert_eq!(aux, image_id(&d, BUSYBOX_IMG));
    assert_eq!(
        lines.last().unwrap()["stream"],
        "Successfully tagged raw:latest\n"
    );
}

#[test]
fn onbuild_quiet_iidfile_plain_cli_and_prune() {
    let d = daemon_with_busybox();
    let base = context(&dockerfile("onbuild.Dockerfile"), &[]);
    build_ok(&d, base.path(), &["-t", "onbase"]);
    assert_eq!(
        inspect(&d, "onbase")["Config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered > /trig", "ENV FROM_TRIGGER=1"])
    );
    let child = context("FROM onbase\nRUN cat /trig\n", &[]);
    let o = build_ok(&d, child.path(), &["-t", "onchild"]);
    assert!(o.contains("# Executing 2 build triggers"), "{o}");
    assert!(o.contains("triggered"), "{o}");
    let c = &inspect(&d, "onchild")["Config"];
    assert!(c["OnBuild"].is_null(), "{c}");
    assert!(c["Env"].to_string().contains("FROM_TRIGGER=1"), "{c}");

    // -q: the ID alone; --iidfile: the ID without a newline.
    let iid = child.path().join("iid");
    let o = build_ok(
        &d,
        child.path(),
        &["-q", "--iidfile", iid.to_str().unwrap()],
    );
    let id = image_id(&d, "onchild");
    assert_eq!(o, format!("{id}\n"));
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), format!("{id}\n"));
    let iid2 = child.path().join("iid2");
    build_ok(&d, child.path(), &["--iidfile", iid2.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&iid2).unwrap(), id);

    // Plain `docker build`: without buildx the CLI uses the classic builder.
    let mut c = d.docker_cmd(&["build", "-t", "plain", child.path().to_str().unwrap()]);
    c.env_remove("DOCKER_BUILDKIT");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("Successfully tagged plain:latest"),
        "{}",
        out(&o)
    );

    // A compressed context.
    let o = build_ok(&d, child.path(), &["--compress", "-t", "compressed"]);
    assert!(o.contains("Successfully tagged compressed:latest"), "{o}");

    // The classic builder keeps no cache of its own to prune.
    let o = d.docker_ok(&["builder", "prune", "-f"]);
    assert!(o.contains("Total reclaimed space: 0B"), "{o}");
    let r = d.request(
        "POST",
        "/v1.51/build/prune?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn a_daemon_killed_mid_build_comes_back_clean() {
    let mut d = daemon_with_busybox();
    let ctx = context(
        "FROM test/busybox:1\nCOPY a.txt /a\nRUN sleep 60\n",
        &[("a.txt", b"a\n")],
    );
    let mut c = d.docker_cmd(&["build", "-t", "killed", ctx.path().to_str().unwrap()]);
    c.env("DOCKER_BUILDKIT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut cli = c.spawn().unwrap();
    // The COPY step has unpacked the context, and the RUN step runs.
    wait_for("the RUN step", &d, || {
        d.data_root().join("builder").exists() && !d.docker_ok(&["ps", "-q"]).is_empty()
    });
    d.signal(libc::SIGKILL);
    d.stopped = Some(d.child.wait().unwrap());
    let _ = cli.wait();
    let d = d.restart();
    // What the build had unpacked is gone, and no step's layer is left.
    assert!(!d.data_root().join("builder").exists());
    let leftovers: Vec<String> = std::fs::read_dir(d.data_root().join("overlay2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("build-"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());
    // The RUN step's container is left, as Docker leaves it, and goes like any.
    let ids = d.docker_ok(&["ps", "-aq"]);
    assert_eq!(ids.lines().count(), 1, "{ids}");
    d.docker_ok(&["rm", "-f", ids.trim()]);
    // The COPY step was committed before the kill: the next build finds it.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM test/busybox:1\nCOPY a.txt /a\nRUN true\n",
    )
    .unwrap();
    let o = build_ok(&d, ctx.path(), &["-t", "again"]);
    assert_eq!(o.matches(" ---> Using cache").count(), 1, "{o}");
}
