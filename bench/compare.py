#!/usr/bin/env python3
"""Side-by-side benchmark: this daemon ("ours") against Docker Engine 20.10 ("docker").

Run through bench/compare.sh, which builds and installs what is needed. Each workload runs
alternately against the two daemons (A B A B ...) for --rounds rounds after a warm-up, and
is reported as min / median / max and the ratio of medians, expressed as "times better for
ours" (time: docker/ours; throughput: ours/docker; memory: docker/ours).

Both daemons run isolated: their own data-root, exec-root, unix socket and pidfile, each in
a network namespace this script creates (so Docker's bridge and iptables rules live and die
there). Everything is stopped and removed at the end.
"""

import argparse
import concurrent.futures
import datetime
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS_BIN = os.path.join(ROOT, "target/release/dockerd")
LOADCLIENT = os.path.join(ROOT, "target/release/examples/loadclient")
DOCKER_BIN = "/usr/sbin/dockerd"
CLI = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else shutil.which("docker")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ping(sock_path, timeout=0.5):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def api_call(sock_path, method, path, body=None, upgrade=False, timeout=30, raw=None,
             content_type="application/json"):
    """One request on a fresh connection, answered in full: the status line, headers
    and body; with `upgrade`, everything the hijacked stream carries until it ends.
    `body` is sent as JSON, or `raw` as is."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    payload = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: d\r\nContent-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
    head += "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "Connection: close\r\n"
    s.sendall(head.encode() + b"\r\n" + payload)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def tree_pids(root_pid):
    """root_pid and all its descendants."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(p))
        except (OSError, ValueError):
            pass
    out, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def exe_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cgroup_mounts():
    """{controller: (root, mount point)} of the cgroup v1 hierarchies mounted here, and
    "" for the cgroup2 one."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, post = pre.split(), post.split()
            if len(post) < 3 or len(fields) < 5:
                continue
            if post[0] == "cgroup2":
                out.setdefault("", (fields[3], fields[4]))
            elif post[0] == "cgroup":
                for opt in post[2].split(","):
                    out.setdefault(opt, (fields[3], fields[4]))
    return out


def cgroup_limits(pid):
    """The limits in force on pid, each the tightest of its cgroup's and its parents':
    {"memory": bytes, "cpus": quota / period, "pids": count}, None where there is none.
    Reads the v1 controller where the host has one, the cgroup2 files otherwise."""
    mounts = cgroup_mounts()
    paths = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                paths[c] = path

    def chain(c):
        """pid's cgroup directory in controller c's hierarchy, then each parent's."""
        if c not in paths or c not in mounts:
            return []
        root, mp = mounts[c]
        rel = paths[c]
        if root != "/" and (rel == root or rel.startswith(root + "/")):
            rel = rel[len(root):]
        d, out = os.path.normpath(os.path.join(mp, rel.lstrip("/"))), []
        while d == mp or d.startswith(mp + "/"):
            out.append(d)
            if d == mp:
                break
            d = os.path.dirname(d)
        return out

    def read(d, name):
        try:
            with open(os.path.join(d, name)) as f:
                return f.read().split()
        except OSError:
            return None

    def tightest(c1, f1, c2, f2, parse):
        """The smallest limit along the v1 chain (controller c1, file f1) if the host
        has that controller, else along the cgroup2 chain (file f2)."""
        dirs, name = (chain(c1), f1) if c1 in paths and c1 in mounts else (chain(c2), f2)
        vals = [v for v in (parse(read(d, name), d) for d in dirs) if v is not None]
        return min(vals) if vals else None

    def memory(v, d):
        if not v or v[0] == "max":
            return None
        n = int(v[0])
        return n if n < (1 << 62) else None

    def pids(v, d):
        return int(v[0]) if v and v[0] != "max" else None

    def cpus(v, d):
        if not v:
            return None
        if len(v) == 2:  # cgroup2 cpu.max: "QUOTA PERIOD" or "max PERIOD"
            return None if v[0] == "max" else int(v[0]) / int(v[1])
        quota, period = int(v[0]), read(d, "cpu.cfs_period_us")
        return None if quota < 0 or not period else quota / int(period[0])

    return {"memory": tightest("memory", "memory.limit_in_bytes", "", "memory.max", memory),
            "cpus": tightest("cpu", "cpu.cfs_quota_us", "", "cpu.max", cpus),
            "pids": tightest("pids", "pids.max", "", "pids.max", pids)}


class Engine:
    """One daemon under test, in its own directory and network namespace."""

    def __init__(self, name, work):
        self.name = name
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "docker.sock")
        self.netns = f"bench-{name}-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], check=True)
        self.proc = None
        self.generation = 0

    def argv(self, data, exec_root, sock, pidfile, config):
        if self.name == "ours":
            return [OURS_BIN, "-H", f"unix://{sock}", "--data-root", data, "--exec-root", exec_root,
                    "--pidfile", pidfile, "--config-file", config]
        return [DOCKER_BIN, "-H", f"unix://{sock}", "--data-root", data, "--exec-root", exec_root,
                "--pidfile", pidfile, "--config-file", config, "--containerd-namespace", f"bench{os.getpid()}",
                "--containerd-plugins-namespace", f"bench{os.getpid()}-plugins"]

    def start(self, fresh=False, env=None):
        """Starts the daemon; returns seconds from exec to the first answered /_ping."""
        self.generation += 1
        base = os.path.join(self.dir, f"gen{self.generation}") if fresh else self.dir
        os.makedirs(base, exist_ok=True)
        sock = os.path.join(base, "docker.sock") if fresh else self.sock
        config = os.path.join(base, "daemon.json")
        with open(config, "w") as f:
            f.write("{}")
        argv = ["nsenter", f"--net=/run/netns/{self.netns}", "--"] + self.argv(
            os.path.join(base, "data"), os.path.join(base, "exec"), sock, os.path.join(base, "docker.pid"), config)
        logf = open(os.path.join(base, "daemon.log"), "ab")
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        while not ping(sock):
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {base}/daemon.log")
            if time.perf_counter() - t0 > 60:
                raise RuntimeError(f"{self.name} did not answer within 60s")
            time.sleep(0.0005)
        elapsed = time.perf_counter() - t0
        self.proc, self.sock_now, self.base_now = proc, sock, base
        return elapsed

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        time.sleep(0.5)

    def cli(self, *args, check=True, capture=True, env=None):
        r = subprocess.run([CLI, "-H", f"unix://{self.sock_now}"] + list(args),
                           stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                           stderr=subprocess.PIPE,
                           env=dict(os.environ, DOCKER_CONFIG=os.path.join(self.dir, "cli"), **(env or {})))
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")
        return r

    def timed(self, *args):
        t0 = time.perf_counter()
        self.cli(*args)
        return time.perf_counter() - t0

    def engine_rss_kib(self):
        return sum(rss_kib(p) for p in self.engine_pids())

    def engine_pss_kib(self):
        return sum(pss_kib(p) for p in self.engine_pids())

    def engine_pids(self):
        """The daemon and its helpers: for ours, the daemon, its container monitors and
        network proxies; for Docker, dockerd, containerd and the containerd shims (and
        docker-proxy, a child of dockerd)."""
        if not self.proc:
            return set()
        pids = set(tree_pids(self.proc.pid))
        if self.name == "ours":
            ours = os.path.realpath(OURS_BIN)
            for p in all_pids():
                if exe_of(p) == ours and " init" in cmdline(p):
                    pids.add(p)
            keep = {p for p in pids if exe_of(p) == ours}
        else:
            for p in all_pids():
                if "containerd-shim" in exe_of(p) and f"bench{os.getpid()}" in cmdline(p):
                    pids.add(p)
            keep = {p for p in pids if any(n in exe_of(p) for n in ("dockerd", "containerd"))}
        return keep

    def cleanup(self):
        self.stop()
        # Anything left that belongs to this engine: shims, monitors, container processes.
        for p in all_pids():
            c = cmdline(p)
            if self.dir in c or f"bench{os.getpid()}" in c:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.5)
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if mp.startswith(self.dir):
                    mounts.append(mp)
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.netns], stderr=subprocess.DEVNULL)


def stats(values):
    if not values:
        return None
    v = sorted(values)
    return {"min": v[0], "median": statistics.median(v), "max": v[-1], "samples": v}


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="dockerd-bench-")
        self.results = []
        self.engines = []

    def record(self, key, title, unit, better, ours, docker, goal=None, note="", errors=None):
        """errors: {engine name: message} for engines whose side of the workload failed;
        their side is recorded as failed (no figures, no ratio) and the goal as missed."""
        errors = errors or {}
        o = None if "ours" in errors else stats(ours)
        d = None if "docker" in errors else stats(docker)
        ratio = None
        if o and d:
            ratio = (d["median"] / o["median"]) if better == "lower" else (o["median"] / d["median"])
        entry = {"key": key, "title": title, "unit": unit, "better": better, "ours": o, "docker": d,
                 "ratio": ratio, "goal": goal, "met": (goal is None or (ratio is not None and ratio >= goal)),
                 "note": note}
        if errors:
            entry["errors"] = errors
        self.results.append(entry)
        side = lambda name, s: (f"{name} FAILED ({errors[name]})" if name in errors else
                                f"{name} median {s['median']:.4g} {unit}" if s else f"{name}: no figures")
        log(f"  {title}: {side('ours', o)}, {side('docker', d)}"
            + (f" → {ratio:.2f}× " if ratio is not None else " ")
            + (f"(goal {goal}×: {'met' if entry['met'] else 'MISSED'})" if goal else ""))

    def guarded(self, fn, errors):
        """fn for self.alternate that, once an engine has failed (its first error kept in
        errors), gives None for it instead of raising, so the other engine is still measured
        and the failure is reported rather than ending the whole benchmark."""
        def g(e):
            if e.name in errors:
                return None
            try:
                return fn(e)
            except (RuntimeError, OSError, ValueError, KeyError, IndexError) as err:
                msg = " ".join(str(err).split()) or type(err).__name__
                errors[e.name] = msg[len(e.name) + 2:] if msg.startswith(f"{e.name}: ") else msg
                log(f"  {e.name} failed: {errors[e.name]}")
                return None
        return g

    def security(self, img, rounds):
        """A container under each engine's default seccomp profile, and unconfined:
        what the filter costs a start."""
        log("docker run --rm IMG true under the default seccomp profile")
        o, d = self.alternate(lambda e: e.timed("run", "--rm", "--network", "none", img, "true"), rounds, warmup=2)
        self.record("run_seccomp", "docker run --rm IMG true, default seccomp profile", "s", "lower", o, d, goal=5,
                    note="both: Docker's default profile (ours compiled once per capability set)")
        log("docker run --rm --security-opt seccomp=unconfined IMG true")
        o, d = self.alternate(lambda e: e.timed("run", "--rm", "--network", "none", "--security-opt",
                                                "seccomp=unconfined", img, "true"), rounds, warmup=2)
        self.record("run_unconfined", "docker run --rm --security-opt seccomp=unconfined IMG true", "s", "lower",
                    o, d, note="the same start without a filter")

    def alternate(self, fn, rounds, warmup=1):
        """Runs fn(engine) A B A B …; returns {name: [values]} without the warm-up."""
        out = {e.name: [] for e in self.engines}
        for i in range(warmup + rounds):
            for e in self.engines:
                v = fn(e)
                if i >= warmup:
                    out[e.name].append(v)
        return out["ours"], out["docker"]

    def make_rootfs_tars(self):
        root = os.path.join(self.work, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "etc"))
        shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
        applets = subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE, check=True).stdout.decode().split()
        for a in applets:
            if a != "busybox":
                os.symlink("busybox", os.path.join(root, "bin", a))
        with open(os.path.join(root, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        with open(os.path.join(root, "etc/group"), "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")
        self.small_tar = os.path.join(self.work, "busybox.tar")
        subprocess.run(["tar", "-C", root, "-cf", self.small_tar, "."], check=True)
        # The 200 MiB root: busybox plus incompressible data in files of mixed sizes.
        data = os.path.join(root, "data")
        os.makedirs(data)
        remaining = 200 * 1024 * 1024 - os.path.getsize(self.small_tar)
        i = 0
        sizes = [64 << 20, 32 << 20, 16 << 20] + [1 << 20] * 64 + [64 << 10] * 256
        for size in sizes:
            if remaining <= 0:
                break
            size = min(size, remaining)
            with open(os.path.join(data, f"f{i}"), "wb") as f:
                f.write(os.urandom(size))
            remaining -= size
            i += 1
        self.big_tar = os.path.join(self.work, "big.tar")
        subprocess.run(["tar", "-C", root, "-cf", self.big_tar, "."], check=True)

    def run(self):
        rounds = self.args.rounds
        log(f"work directory {self.work}")
        self.make_rootfs_tars()
        ours, docker = Engine("ours", self.work), Engine("docker", self.work)
        self.engines = [ours, docker]
        want = lambda group: not self.args.only or group in self.args.only
        try:
            if want("startup"):
                self.startup_and_idle_memory(rounds)
            for e in self.engines:
                e.start()
                e.cli("import", "-c", 'CMD ["sh"]', self.small_tar, "bench/busybox:1")
            img = "bench/busybox:1"

            if want("run"):
                log("docker run --rm IMG true (--network none)")
                o, d = self.alternate(lambda e: e.timed("run", "--rm", "--network", "none", img, "true"), rounds, warmup=2)
                self.record("run_none", "docker run --rm --network none IMG true", "s", "lower", o, d, goal=5)

                log("docker run --rm IMG true (default network)")
                o, d = self.alternate(lambda e: e.timed("run", "--rm", img, "true"), rounds, warmup=2)
                self.record("run_default", "docker run --rm IMG true (default network)", "s", "lower", o, d, goal=5,
                            note="both: the default bridge, a veth pair, an address and NAT")

            if want("idle"):
                self.idle_reactivation(rounds)
            if want("security"):
                self.security(img, rounds)
            if want("parallel"):
                self.parallel_run(img, rounds)
            if want("ports"):
                self.published_ports(img, rounds)
            if want("api"):
                self.api_throughput(img, rounds)
            if want("image"):
                self.import_load_save(rounds)
            if want("registry"):
                self.registry_push_pull(rounds)
            if want("exec"):
                self.exec_and_health(img, rounds)
            if want("volume"):
                self.volumes(img, rounds)
            if want("restart"):
                self.restart_latency(img, rounds)
            if want("resources"):
                self.resources(img, rounds)
            if want("filesystem"):
                self.filesystem(img, rounds)
            if want("build"):
                self.build(img, rounds)
            if want("logs"):
                self.journald_logs(img, rounds)
        finally:
            for e in self.engines:
                e.cleanup()
            shutil.rmtree(self.work, ignore_errors=True)
        return self.results

    def startup_and_idle_memory(self, rounds):
        log("daemon start to first answered /_ping; idle memory after start")
        mem = {"ours": [], "docker": []}

        def cold(e):
            t = e.start(fresh=True)
            time.sleep(1.0)
            mem[e.name].append(e.engine_rss_kib() / 1024)
            e.stop()
            return t
        o, d = self.alternate(cold, rounds)
        self.record("start", "daemon start to first answered /_ping", "s", "lower", o, d, goal=20)
        self.record("idle_rss", "idle resident memory after start", "MiB", "lower", mem["ours"], mem["docker"], goal=10)

        # Ours only: exec to READY=1, and the first request through socket activation.
        ready, activated = [], []
        for i in range(rounds):
            d = tempfile.mkdtemp(dir=self.work)
            nsock = os.path.join(d, "notify")
            n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            n.bind(nsock)
            n.settimeout(30)
            cfg = os.path.join(d, "daemon.json")
            open(cfg, "w").write("{}")
            # In this engine's namespace: the daemon makes its default bridge at start.
            enter = ["nsenter", f"--net=/run/netns/{self.engines[0].netns}"]
            args = enter + [OURS_BIN, "-H", f"unix://{d}/s.sock", "--data-root", f"{d}/data", "--exec-root",
                            f"{d}/exec", "--pidfile", f"{d}/pid", "--config-file", cfg]
            t0 = time.perf_counter()
            p = subprocess.Popen(args, env=dict(os.environ, NOTIFY_SOCKET=nsock), stderr=subprocess.DEVNULL)
            while b"READY=1" not in n.recv(4096):
                pass
            ready.append(time.perf_counter() - t0)
            p.send_signal(signal.SIGTERM)
            p.wait()
            # Socket activation: the activator holds the socket; the first request execs the daemon.
            sa_sock = os.path.join(d, "sa.sock")
            sa = subprocess.Popen(["systemd-socket-activate", "-l", sa_sock] + enter + [OURS_BIN, "-H", "fd://", "--data-root", f"{d}/data2",
                                   "--exec-root", f"{d}/exec2", "--pidfile", f"{d}/pid2", "--config-file", cfg],
                                  stderr=subprocess.PIPE)
            # The socket is listening once the activator says so (the file exists a
            # moment earlier, from bind).
            while b"Listening on" not in sa.stderr.readline():
                pass
            threading.Thread(target=sa.stderr.read, daemon=True).start()
            t0 = time.perf_counter()
            assert ping(sa_sock, timeout=30)
            activated.append(time.perf_counter() - t0)
            sa.send_signal(signal.SIGTERM)
            sa.wait()
            n.close()
        for name, vals in (("exec → READY=1", ready), ("first request through systemd-socket-activate, cold", activated)):
            s = stats(vals)
            self.results.append({"key": "ours_" + ("ready" if "READY" in name else "activation"), "title": name,
                                 "unit": "s", "better": "lower", "ours": s, "docker": None, "ratio": None,
                                 "goal": None, "met": True, "note": "this daemon only"})
            log(f"  {name}: median {s['median'] * 1000:.2f} ms")

    def idle_reactivation(self, rounds):
        """Ours only: a socket-activated daemon with `idle-timeout` exits while 20
        containers run; the first request after that starts it again through the
        socket, and it reattaches to all 20 before it answers."""
        log("first request after an idle exit, 20 running containers")
        d = tempfile.mkdtemp(dir=self.work)
        cfg = os.path.join(d, "daemon.json")
        open(cfg, "w").write('{"idle-timeout": 1}')
        sa_sock = os.path.join(d, "sa.sock")
        enter = ["nsenter", f"--net=/run/netns/{self.engines[0].netns}"]

        def activator():
            if os.path.exists(sa_sock):
                os.unlink(sa_sock)
            sa = subprocess.Popen(["systemd-socket-activate", "-l", sa_sock] + enter + [
                OURS_BIN, "-H", "fd://", "--data-root", f"{d}/data", "--exec-root", f"{d}/exec",
                "--pidfile", f"{d}/pid", "--config-file", cfg], stderr=subprocess.PIPE)
            while b"Listening on" not in sa.stderr.readline():
                pass
            threading.Thread(target=sa.stderr.read, daemon=True).start()
            return sa

        def cli(*args):
            return subprocess.run([CLI, "-H", f"unix://{sa_sock}", *args], check=True, capture_output=True,
                                  env=dict(os.environ, DOCKER_CONFIG=os.path.join(d, "cli")))

        sa = activator()
        cli("import", "-c", 'CMD ["sh"]', self.small_tar, "bench/busybox:1")
        for i in range(20):
            cli("run", "-d", "--network", "none", "bench/busybox:1", "sleep", "100000")
        times = []
        try:
            for _ in range(rounds):
                sa.wait(timeout=60)
                assert sa.returncode == 0, f"the idle daemon exited with {sa.returncode}"
                sa = activator()
                t0 = time.perf_counter()
                answer = api_call(sa_sock, "GET", "/containers/json")
                times.append(time.perf_counter() - t0)
                body = answer.split(b"\r\n\r\n", 1)[1]
                assert b"200 OK" in answer.split(b"\r\n", 1)[0], answer[:200]
                assert body.count(b'"State":"running"') == 20, body[:300]
        finally:
            ids = cli("ps", "-aq").stdout.decode().split()
            if ids:
                cli("rm", "-f", *ids)
            sa.send_signal(signal.SIGTERM)
            sa.wait()
        s = stats(times)
        met = s["median"] <= 0.050
        self.results.append({"key": "ours_idle_reactivation",
                             "title": "first request after an idle exit, 20 running containers (re-activation and reattach)",
                             "unit": "s", "better": "lower", "ours": s, "docker": None, "ratio": None,
                             "goal": None, "met": met,
                             "note": f"this daemon only; goal ≤ 50 ms: {'met' if met else 'missed'}"})
        log(f"  median {s['median'] * 1000:.2f} ms (goal ≤ 50 ms: {'met' if met else 'missed'})")

    def parallel_run(self, img, rounds):
        log("50 × docker run -d IMG sleep 300 in parallel; memory with 50 running; docker rm -f of all")
        mem = {"ours": [], "docker": []}
        pss = {"ours": [], "docker": []}
        rm_times = {"ours": [], "docker": []}

        def fifty(e):
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
                ids = list(ex.map(lambda _: e.cli("run", "-d", img, "sleep", "300").stdout.decode().strip(), range(50)))
            elapsed = time.perf_counter() - t0
            time.sleep(1.0)
            mem[e.name].append(e.engine_rss_kib() / 1024)
            pss[e.name].append(e.engine_pss_kib() / 1024)
            t1 = time.perf_counter()
            e.cli("rm", "-f", *ids)
            rm_times[e.name].append(time.perf_counter() - t1)
            return elapsed
        o, d = self.alternate(fifty, rounds)
        # The warm-up round's extra samples are dropped so each list has `rounds` values.
        for k in mem:
            mem[k] = mem[k][-rounds:]
            pss[k] = pss[k][-rounds:]
            rm_times[k] = rm_times[k][-rounds:]
        self.record("run_d_50", "50 × docker run -d IMG sleep 300, in parallel (total)", "s", "lower", o, d, goal=4)
        self.record("rm_f_50", "docker rm -f of those 50", "s", "lower", rm_times["ours"], rm_times["docker"])
        self.record("rss_50", "resident memory (RSS sum) with 50 running containers", "MiB", "lower", mem["ours"],
                    mem["docker"], note="RSS counts shared pages (binaries, libc) once per process")
        self.record("pss_50", "proportional memory (PSS sum) with 50 running containers", "MiB", "lower", pss["ours"],
                    pss["docker"], note="PSS shares each page among the processes mapping it")

    def published_ports(self, img, rounds):
        log("50 × docker run -d -p PORT IMG httpd in parallel; HTTP requests/s through a published port on 127.0.0.1")

        def fifty(e):
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
                ids = list(ex.map(lambda i: e.cli("run", "-d", "-p", f"{20000 + i}:80", img, "httpd", "-f", "-p", "80",
                                                  "-h", "/etc").stdout.decode().strip(), range(50)))
            elapsed = time.perf_counter() - t0
            e.cli("rm", "-f", *ids)
            return elapsed
        o, d = self.alternate(fifty, rounds)
        self.record("run_p_50", "50 × docker run -d -p PORT IMG httpd, in parallel (total)", "s", "lower", o, d, goal=4)

        for e in self.engines:
            e.cli("run", "-d", "--name", "web", "-p", "18080:80", img, "httpd", "-f", "-p", "80", "-h", "/etc")
            enter = ["nsenter", f"--net=/run/netns/{e.netns}"]
            deadline = time.time() + 30
            while subprocess.run(enter + ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:18080/passwd"],
                                 stderr=subprocess.DEVNULL).returncode != 0:
                if time.time() > deadline:
                    raise RuntimeError(f"{e.name}: the published port does not answer")
                time.sleep(0.1)

        def http_rps(e):
            enter = ["nsenter", f"--net=/run/netns/{e.netns}"]
            r = subprocess.run(enter + [LOADCLIENT, "tcp://127.0.0.1:18080", "/passwd", "--connections", "8", "--seconds",
                                        str(self.args.load_seconds)], stdout=subprocess.PIPE, check=True)
            return json.loads(r.stdout)["rps"]
        o, d = self.alternate(http_rps, rounds)
        self.record("http_rps", "HTTP requests/s to busybox httpd through 127.0.0.1:PORT (8 clients, a connection each)",
                    "req/s", "higher", o, d, goal=1,
                    note="loopback traffic goes through each engine's userland proxy (its default)")
        for e in self.engines:
            e.cli("rm", "-f", "web")

    def api_throughput(self, img, rounds):
        log("API round trips: GET /_ping and GET /containers/json?all=1 with 100 containers")
        for e in self.engines:
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
                list(ex.map(lambda i: e.cli("create", "--name", f"c{i}", img, "true"), range(100)))

        def rps(path):
            def f(e):
                r = subprocess.run([LOADCLIENT, e.sock_now, path, "--connections", "8", "--seconds", str(self.args.load_seconds)],
                                   stdout=subprocess.PIPE, check=True)
                return json.loads(r.stdout)["rps"]
            return f
        o, d = self.alternate(rps("/_ping"), rounds)
        self.record("ping_rps", "GET /_ping throughput (8 keep-alive connections)", "req/s", "higher", o, d, goal=3)
        o, d = self.alternate(rps("/v1.41/containers/json?all=1"), rounds)
        self.record("list_rps", "GET /containers/json?all=1 throughput, 100 containers", "req/s", "higher", o, d, goal=3)
        for e in self.engines:
            e.cli("rm", "-f", *[f"c{i}" for i in range(100)])

    def registry_push_pull(self, rounds):
        log("docker push of a 200 MiB, 4-layer image to an empty local registry; docker pull of it into an empty store")
        archive = make_layered_archive(self.work)
        ref = "127.0.0.1:5000/bench/layered:1"
        regs = {e.name: LocalRegistry(e, self.work) for e in self.engines}
        pulls = {"ours": [], "docker": []}
        for e in self.engines:
            e.cli("load", "-i", archive)

        def cycle(e):
            reg = regs[e.name]
            reg.start()
            # Each timed step starts with no writeback left over from the step or
            # the engine before it (this daemon syncs layers it stores; the
            # flush must not include the other engine's files).
            os.sync()
            t = e.timed("push", ref)
            e.cli("rmi", ref)
            os.sync()
            p = e.timed("pull", ref)
            pulls[e.name].append(p)
            return t
        try:
            o, d = self.alternate(cycle, rounds)
        finally:
            for r in regs.values():
                r.stop()
        for e in self.engines:
            e.cli("rmi", ref)
        os.unlink(archive)
        self.record("push", "docker push of a 200 MiB, 4-layer image to an empty local registry", "s", "lower", o, d,
                    goal=2, note="registry: Debian's docker-registry on 127.0.0.1 in each engine's namespace")
        self.record("pull", "docker pull of that image into an empty store", "s", "lower", pulls["ours"][-rounds:],
                    pulls["docker"][-rounds:], goal=2)

    def exec_and_health(self, img, rounds):
        log("docker exec CTR true; CPU with 50 health-checked containers (1 s interval)")
        for e in self.engines:
            e.cli("run", "-d", "--name", "bench-exec", "--network", "none", img, "sleep", "100000")

        def ten_execs(e):
            t0 = time.perf_counter()
            for _ in range(10):
                e.cli("exec", "bench-exec", "true")
            return (time.perf_counter() - t0) / 10
        o, d = self.alternate(ten_execs, rounds)
        self.record("exec_true", "docker exec CTR true (mean of 10 per round)", "s", "lower", o, d, goal=5,
                    note="through the docker CLI, whose own start and three requests take about 25 ms "
                         "(docker version: see cli_floor); exec_api is the engine's share")

        def twenty_api_execs(e):
            """What the CLI's `docker exec CTR true` asks of the engine, sent directly:
            create, start (attached, until the stream ends), inspect."""
            t0 = time.perf_counter()
            for _ in range(20):
                r = api_call(e.sock_now, "POST", "/v1.41/containers/bench-exec/exec",
                             {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})
                exec_id = json.loads(r.partition(b"\r\n\r\n")[2])["Id"]
                api_call(e.sock_now, "POST", f"/v1.41/exec/{exec_id}/start", {"Detach": False, "Tty": False},
                         upgrade=True)
                r = api_call(e.sock_now, "GET", f"/v1.41/exec/{exec_id}/json")
                if json.loads(r.partition(b"\r\n\r\n")[2])["ExitCode"] != 0:
                    raise RuntimeError(f"{e.name}: exec of true did not exit 0")
            return (time.perf_counter() - t0) / 20
        o, d = self.alternate(twenty_api_execs, rounds)
        self.record("exec_api", "exec of true through the API: create, attached start, inspect (mean of 20)", "s",
                    "lower", o, d, goal=5)

        def ten_versions(e):
            t0 = time.perf_counter()
            for _ in range(10):
                e.cli("version")
            return (time.perf_counter() - t0) / 10
        o, d = self.alternate(ten_versions, rounds)
        self.record("cli_floor", "docker version (the CLI's own cost of one call, for reference)", "s", "lower", o, d)
        for e in self.engines:
            e.cli("rm", "-f", "bench-exec")

        def cpu_ticks(e):
            """utime+stime+cutime+cstime of each engine process: its own CPU and
            that of the children it reaped (monitors, shims, runc, probes)."""
            out = {}
            for pid in e.engine_pids():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    out[pid] = sum(int(x) for x in fields[11:15])
                except (OSError, IndexError, ValueError):
                    pass
            return out

        window = 60.0

        def healthy_minute(e):
            with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
                ids = list(ex.map(lambda _: e.cli(
                    "run", "-d", "--network", "none", "--health-cmd", "true", "--health-interval", "1s",
                    img, "sleep", "100000").stdout.decode().strip(), range(50)))
            time.sleep(3.0)
            c0, t0 = cpu_ticks(e), time.perf_counter()
            time.sleep(window)
            c1, elapsed = cpu_ticks(e), time.perf_counter() - t0
            used = sum(c1[p] - c0[p] for p in c0 if p in c1) / os.sysconf("SC_CLK_TCK")
            e.cli("rm", "-f", *ids)
            return used / elapsed * 100
        n = min(rounds, 3)
        o, d = self.alternate(healthy_minute, n, warmup=0)
        self.record("health_cpu", "CPU of the engine with 50 containers probed every second (% of one core)", "%",
                    "lower", o, d, goal=5,
                    note="60 s per round: the engine's processes and the children they reaped "
                         "(ours: daemon, monitors, exec monitors, probes; Docker: dockerd, containerd, shims, runc, probes)")

    def journald_logs(self, img, rounds):
        lines = 20000
        log(f"journald log driver: a container printing {lines} lines, to its exit; docker logs reading them back")
        journald = None
        sock = "/run/systemd/journal/socket"

        def answers():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(sock)
                return True
            except OSError:
                return False
            finally:
                s.close()
        if not answers():
            # No journald on this machine (no systemd as PID 1): one for the run.
            journald = subprocess.Popen(["/lib/systemd/systemd-journald"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            deadline = time.time() + 30
            while not answers():
                if time.time() > deadline:
                    raise RuntimeError("systemd-journald did not open its socket")
                time.sleep(0.05)
        script = f"i=0; while [ $i -lt {lines} ]; do echo line $i; i=$((i+1)); done"
        last = {}

        def write(e):
            t0 = time.perf_counter()
            cid = e.cli("run", "-d", "--network", "none", "--log-driver", "journald", img, "sh", "-c", script) \
                .stdout.decode().strip()
            e.cli("wait", cid)
            t = time.perf_counter() - t0
            if e.name in last:
                e.cli("rm", last[e.name])
            last[e.name] = cid
            return t

        def read(e):
            cid = last[e.name]
            t0 = time.perf_counter()
            out = e.cli("logs", cid).stdout
            t = time.perf_counter() - t0
            n = out.count(b"\n")
            if n != lines:
                raise RuntimeError(f"{e.name}: docker logs gave {n} lines of {lines}")
            return t
        try:
            errors = {}
            o, d = self.alternate(self.guarded(write, errors), rounds)
            self.record("journald_write", f"docker run --log-driver journald IMG printing {lines} lines, to its exit",
                        "s", "lower", [v for v in o if v is not None], [v for v in d if v is not None],
                        errors=errors, note="each line one journal record, sent by the container's monitor "
                        "(ours) or the daemon (Docker)")
            errors = {}
            o, d = self.alternate(self.guarded(read, errors), rounds)
            self.record("journald_read", f"docker logs of a journald container ({lines} lines)", "s", "lower",
                        [v for v in o if v is not None], [v for v in d if v is not None], errors=errors,
                        note="both through libsystemd's sd-journal")
        finally:
            for e in self.engines:
                if e.name in last:
                    e.cli("rm", "-f", last[e.name], check=False)
            if journald:
                journald.kill()
                journald.wait()

    def restart_latency(self, img, rounds):
        log("restart of an always container whose process is killed: exit to running again")

        def one_restart(e):
            """Kills the process of a `--restart always` container and times, with the
            engine's own `start` event, how long until it runs again; Docker's first
            backoff (100 ms, the same here) is taken off."""
            cid = e.cli("run", "-d", "--network", "none", "--restart", "always", img, "sleep", "100000") \
                .stdout.decode().strip()
            pid = int(e.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout.decode().strip())
            ev = subprocess.Popen([CLI, "-H", f"unix://{e.sock_now}", "events", "--filter", f"container={cid}",
                                   "--filter", "event=start", "--format", "{{.TimeNano}}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, DOCKER_CONFIG=os.path.join(e.dir, "cli")))
            try:
                time.sleep(0.3)  # the subscription is in place
                t0 = time.time_ns()
                os.kill(pid, signal.SIGKILL)
                line = ev.stdout.readline().decode().strip()
            finally:
                ev.kill()
                ev.wait()
            if not line:
                raise RuntimeError(f"{e.name}: no start event after the container's process was killed")
            count = e.cli("inspect", "-f", "{{.RestartCount}}", cid).stdout.decode().strip()
            e.cli("rm", "-f", cid)
            if count != "1":
                raise RuntimeError(f"{e.name}: RestartCount {count} after one restart")
            return (int(line) - t0) / 1e9 - 0.1
        errors = {}
        o, d = self.alternate(self.guarded(one_restart, errors), rounds)
        self.record("restart_latency", "restart of an always container after its process is killed "
                    "(to its start event, 100 ms backoff excluded)", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], errors=errors)

    def resources(self, img, rounds):
        log("docker run --rm -m 64m --cpus 1 --pids-limit 100 IMG true; docker stats --no-stream with 50 running")
        limits = ["-m", "64m", "--cpus", "1", "--pids-limit", "100"]

        # Checked once per engine before it is timed: a container run with the limits has
        # them in force (its cgroups, read from here, the tightest of each and its parents).
        run_errors = {}

        def prepare_limits(e):
            cid = e.cli("run", "-d", "--network", "none", *limits, img, "sleep", "100000").stdout.decode().strip()
            try:
                pid = int(e.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout.decode().strip())
                got = cgroup_limits(pid)
            finally:
                e.cli("rm", "-f", cid, check=False)
            want = {"memory": 64 << 20, "cpus": 1.0, "pids": 100}
            if got != want:
                raise RuntimeError(f"{e.name}: a container run with {' '.join(limits)} has in force {got}, not {want}")
        for e in self.engines:
            self.guarded(prepare_limits, run_errors)(e)

        o, d = self.alternate(self.guarded(lambda e: e.timed("run", "--rm", *limits, img, "true"), run_errors),
                              rounds, warmup=2)
        self.record("run_limits", "docker run --rm -m 64m --cpus 1 --pids-limit 100 IMG true (default network)", "s",
                    "lower", [v for v in o if v is not None], [v for v in d if v is not None], goal=5,
                    errors=run_errors, note="compare with run_default, the same without limits; the limits are "
                                            "checked to be in force (the container's cgroups) before it is timed")

        # docker stats --no-stream over 50 idle containers: the CLI asks for each one's
        # stats with stream=false (Docker samples each twice, a second or so apart).
        n = 50
        names = [f"bench-stats-{i}" for i in range(n)]
        stats_errors = {}
        ids = {}

        def start_fifty(e):
            with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
                ids[e.name] = list(ex.map(lambda name: e.cli("run", "-d", "--name", name, "--network", "none", img,
                                                             "sleep", "100000").stdout.decode().strip(), names))
            # The stats endpoint itself, once, so that an engine without it is reported
            # with its own words (the CLI, listing all containers, shows "--" instead).
            r = api_call(e.sock_now, "GET", f"/v1.41/containers/{names[0]}/stats?stream=false")
            status = r.split(b"\r\n", 1)[0].decode(errors="replace")
            if status.split()[1:2] != ["200"]:
                body = r.partition(b"\r\n\r\n")[2].decode(errors="replace")
                msg = body[body.find("{"):body.rfind("}") + 1] if "{" in body else body
                try:
                    msg = json.loads(msg)["message"]
                except (ValueError, KeyError, TypeError):
                    pass
                raise RuntimeError(f"{e.name}: GET /containers/ID/stats?stream=false answered {status}: {msg}")

        def stats_all(e):
            t0 = time.perf_counter()
            r = e.cli("stats", "--no-stream")
            elapsed = time.perf_counter() - t0
            rows = [line.split() for line in r.stdout.decode().splitlines()[1:] if line.strip()]
            shown = {row[0] for row in rows}
            missing = [c for c in ids[e.name] if c[:12] not in shown]
            blank = [row[0] for row in rows if "--" in row[2:]]
            if missing or blank:
                raise RuntimeError(f"{e.name}: docker stats --no-stream left out {len(missing)} of the {n} "
                                   f"containers and showed no figures for {len(blank)}")
            return elapsed
        try:
            for e in self.engines:
                self.guarded(start_fifty, stats_errors)(e)
            o, d = self.alternate(self.guarded(stats_all, stats_errors), rounds)
        finally:
            for e in self.engines:
                e.cli("rm", "-f", *names, check=False)
        self.record("stats_50", "docker stats --no-stream, 50 running containers (--network none)", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], goal=5, errors=stats_errors,
                    note="stream=false: Docker takes two samples of each container about a second apart")

    def filesystem(self, img, rounds):
        log("docker commit of a container that wrote 100 MiB in 2,000 files")
        # Each round: a fresh container writes 2,000 files of 50 KiB (random bytes, so
        # nothing compresses away), then is committed; only the commit is timed.
        script = ("i=0; while [ $i -lt 2000 ]; do d=/data/d$((i / 100)); mkdir -p $d; "
                  "head -c 51200 /dev/urandom > $d/f$i; i=$((i + 1)); done")
        errors = {}

        def commit_once(e):
            name = f"bench-commit-{e.name}"
            e.cli("rm", "-f", name, check=False)
            e.cli("run", "--name", name, "--network", "none", img, "sh", "-c", script)
            t = e.timed("commit", name, "bench/committed:1")
            listing = e.cli("run", "--rm", "--network", "none", "bench/committed:1", "sh", "-c",
                            "ls /data/d19 | wc -l").stdout.decode().strip()
            e.cli("rm", "-f", name)
            e.cli("rmi", "bench/committed:1")
            if listing != "100":
                raise RuntimeError(f"{e.name}: the committed image has {listing} of the last 100 files")
            return t
        o, d = self.alternate(self.guarded(commit_once, errors), rounds)
        self.record("commit_100m", "docker commit of a container that wrote 100 MiB in 2,000 files", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], goal=2, errors=errors,
                    note="the committed image is checked to hold the files")

        log("docker cp of a 200 MiB directory out of a running container")
        # 200 files of 1 MiB of random bytes in /data of a running container.
        fill = ("mkdir /data; i=0; while [ $i -lt 200 ]; do head -c 1048576 /dev/urandom > /data/f$i; "
                "i=$((i + 1)); done; touch /ready; sleep 100000")
        cp_errors = {}

        def prepare_cp(e):
            name = f"bench-cp-{e.name}"
            e.cli("rm", "-f", name, check=False)
            e.cli("run", "-d", "--name", name, "--network", "none", img, "sh", "-c", fill)
            for _ in range(600):
                if e.cli("exec", name, "test", "-e", "/ready", check=False).returncode == 0:
                    return
                time.sleep(0.2)
            raise RuntimeError(f"{e.name}: the container did not write its files")

        def cp_once(e):
            dest = os.path.join(self.work, f"cp-{e.name}")
            shutil.rmtree(dest, ignore_errors=True)
            t = e.timed("cp", f"bench-cp-{e.name}:/data", dest)
            n = len(os.listdir(dest))
            size = sum(os.path.getsize(os.path.join(dest, f)) for f in os.listdir(dest))
            shutil.rmtree(dest, ignore_errors=True)
            if n != 200 or size != 200 << 20:
                raise RuntimeError(f"{e.name}: docker cp brought {n} files, {size} bytes")
            return t
        # The other way: a host directory of 200 files of 1 MiB into the same containers.
        src = os.path.join(self.work, "cp-in-src")
        cp_in_errors = {}

        def cp_in_once(e):
            name = f"bench-cp-{e.name}"
            e.cli("exec", name, "rm", "-rf", "/in")
            t = e.timed("cp", src, f"{name}:/in")
            got = e.cli("exec", name, "sh", "-c", "ls /in | wc -l; du -sk /in").stdout.decode().split()
            if got[0] != "200" or int(got[1]) < 200 * 1024:
                raise RuntimeError(f"{e.name}: docker cp into the container left {got}")
            return t
        try:
            for e in self.engines:
                self.guarded(prepare_cp, cp_errors)(e)
            o, d = self.alternate(self.guarded(cp_once, cp_errors), rounds)
            log("docker cp of a 200 MiB directory into a running container")
            os.makedirs(src, exist_ok=True)
            for i in range(200):
                with open(os.path.join(src, f"f{i}"), "wb") as f:
                    f.write(os.urandom(1 << 20))
            i_o, i_d = self.alternate(self.guarded(cp_in_once, cp_in_errors), rounds)
        finally:
            for e in self.engines:
                e.cli("rm", "-f", f"bench-cp-{e.name}", check=False)
            shutil.rmtree(src, ignore_errors=True)
        self.record("cp_out_200m", "docker cp of a 200 MiB directory out of a running container", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], goal=1, errors=cp_errors,
                    note="200 files of 1 MiB; the copy is checked to be complete")
        self.record("cp_in_200m", "docker cp of a 200 MiB directory into a running container", "s", "lower",
                    [v for v in i_o if v is not None], [v for v in i_d if v is not None], errors=cp_in_errors,
                    note="200 files of 1 MiB; the copy is checked to be complete")

    def build(self, img, rounds):
        """docker build with the classic builder (DOCKER_BUILDKIT=0 on both)."""
        ctx = os.path.join(self.work, "build-ctx")
        os.makedirs(os.path.join(ctx, "dir"), exist_ok=True)
        for name, size in [("a.txt", 1 << 10), ("b.txt", 64 << 10)]:
            with open(os.path.join(ctx, name), "wb") as f:
                f.write(os.urandom(size))
        for i in range(50):
            with open(os.path.join(ctx, "dir", f"f{i}"), "wb") as f:
                f.write(os.urandom(16 << 10))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"""FROM {img}
RUN echo one > /one
COPY a.txt /app/
RUN mkdir -p /data && echo two > /data/two
COPY dir/ /app/dir/
RUN i=0; while [ $i -lt 100 ]; do echo $i > /data/f$i; i=$((i + 1)); done
ENV MODE=bench
COPY b.txt /app/
RUN ls /app > /listing
RUN test "$(cat /listing)" = "$(printf 'a.txt\\nb.txt\\ndir')"
""")
        legacy = {"DOCKER_BUILDKIT": "0"}

        def build_once(e, nocache):
            args = ["build", "-q", "-t", "bench/built:1"] + (["--no-cache"] if nocache else []) + [ctx]
            t0 = time.perf_counter()
            e.cli(*args, env=legacy)
            t = time.perf_counter() - t0
            got = e.cli("run", "--rm", "--network", "none", "bench/built:1", "sh", "-c",
                        "ls /app/dir | wc -l; cat /data/f99").stdout.decode().split()
            if got != ["50", "99"]:
                raise RuntimeError(f"{e.name}: the built image holds {got}")
            return t
        log("docker build, 10 instructions (5 RUN, 3 COPY) from busybox, no cache")
        errors = {}
        o, d = self.alternate(self.guarded(lambda e: build_once(e, True), errors), rounds)
        self.record("build_nocache", "docker build, 10 instructions (5 RUN, 3 COPY), --no-cache", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], goal=3, errors=errors,
                    note="classic builder on both (DOCKER_BUILDKIT=0); the image is run and checked")
        log("docker build, the same Dockerfile again, every step from the cache")
        cached_errors = {}
        o, d = self.alternate(self.guarded(lambda e: build_once(e, False), cached_errors), rounds)
        self.record("build_cached", "docker build, the same 10 instructions fully cached", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], goal=5,
                    errors=cached_errors,
                    note="classic builder on both; the image is run and checked; includes the CLI's own "
                         "start, context walk and tar (about 30 ms on this machine, the same for both)")

        log("POST /build of the same context, every step from the cache (the daemon's share)")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
            for name in sorted(os.listdir(ctx)):
                t.add(os.path.join(ctx, name), arcname=name,
                      filter=lambda i: (setattr(i, "uid", 0), setattr(i, "gid", 0), setattr(i, "uname", ""),
                                        setattr(i, "gname", ""), i)[-1])
            end = t.offset
        # Without tarfile's padding to 10 KiB: Docker reads to the end-of-archive
        # blocks, and a server that closes with bytes unread resets the connection.
        context_tar = buf.getvalue()[:end] + b"\0" * 1024
        api_errors = {}

        def api_build(e):
            t0 = time.perf_counter()
            data = api_call(e.sock_now, "POST", "/v1.41/build?q=1&t=bench/built:1", raw=context_tar,
                            content_type="application/x-tar", timeout=60)
            t = time.perf_counter() - t0
            if b"sha256:" not in data or b"errorDetail" in data:
                raise RuntimeError(f"{e.name}: POST /build answered {data[:300]!r}")
            return t
        for e in self.engines:
            self.guarded(api_build, api_errors)(e)
        o, d = self.alternate(self.guarded(api_build, api_errors), rounds)
        self.record("build_cached_api", "POST /build of the same context fully cached (no CLI)", "s", "lower",
                    [v for v in o if v is not None], [v for v in d if v is not None], goal=5,
                    errors=api_errors, note="the same build without the CLI: the daemons' own time")

    def import_load_save(self, rounds):
        log("docker import / save / load of a 200 MiB root tarball")
        imp, save, load = {"ours": [], "docker": []}, {"ours": [], "docker": []}, {"ours": [], "docker": []}

        def cycle(e):
            t = e.timed("import", self.big_tar, "bench/big:1")
            out = os.path.join(self.work, f"saved-{e.name}.tar")
            s = e.timed("save", "-o", out, "bench/big:1")
            e.cli("rmi", "bench/big:1")
            lt = e.timed("load", "-i", out)
            e.cli("rmi", "bench/big:1")
            os.unlink(out)
            save[e.name].append(s)
            load[e.name].append(lt)
            return t
        o, d = self.alternate(cycle, rounds)
        self.record("import", "docker import of a 200 MiB root tarball", "s", "lower", o, d)
        self.record("save", "docker save of that image", "s", "lower", save["ours"][-rounds:], save["docker"][-rounds:])
        self.record("load", "docker load of that archive", "s", "lower", load["ours"][-rounds:], load["docker"][-rounds:])

    def make_volume_tar(self, files=5000, total=100 << 20, seed=5000):
        """busybox.tar plus /data holding `files` files, `total` bytes in all, in 50
        directories; sizes and contents come from a seeded PRNG, so the archive is the same
        every run and its data incompressible. Returns its path and the MD5 of the files'
        contents concatenated in the order of their sorted paths."""
        import hashlib
        import io
        import random
        import tarfile
        path = os.path.join(self.work, "volume.tar")
        shutil.copy(self.small_tar, path)
        rng = random.Random(seed)
        weights = [rng.expovariate(1.0) for _ in range(files)]
        sizes = [int(total * w / sum(weights)) for w in weights]
        sizes[-1] += total - sum(sizes)
        md5 = hashlib.md5()
        with tarfile.open(path, "a", format=tarfile.GNU_FORMAT) as t:
            dirs = sorted({f"./data/d{i // 100:02d}" for i in range(files)})
            for name in ["./data"] + dirs:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                t.addfile(info)
            for i, size in enumerate(sizes):
                data = rng.randbytes(size)
                md5.update(data)
                info = tarfile.TarInfo(f"./data/d{i // 100:02d}/f{i:04d}")
                info.size, info.mode, info.mtime = size, 0o644, 1700000000
                t.addfile(info, io.BytesIO(data))
        return path, md5.hexdigest()

    def clear_volumes(self, e, keep=()):
        """Removes every container of e, and every volume but those in keep, so that a round
        starts clean; returns the names of the volumes it removed."""
        ids = e.cli("ps", "-aq").stdout.decode().split()
        if ids:
            e.cli("rm", "-fv", *ids, check=False)
        names = [n for n in e.cli("volume", "ls", "-q").stdout.decode().split() if n not in keep]
        if names:
            e.cli("volume", "rm", "-f", *names, check=False)
        return names

    def volumes(self, img, rounds):
        log("docker run --rm -v benchvol:/data IMG true (an existing named volume); first use of an image "
            "VOLUME of 100 MiB in 5,000 files (copy-up)")
        n_files, total = 5000, 100 << 20
        vimg = "bench/volume:1"
        tar, digest = self.make_volume_tar(n_files, total)
        run = ["run", "--rm", "--network", "none"]

        def volume_content(e, name):
            """(files, MD5 of their contents in sorted path order) of volume `name`, read by
            a container that mounts it."""
            r = e.cli(*run, "-v", f"{name}:/v", img, "sh", "-c",
                      "find /v -type f | wc -l; find /v -type f | sort | xargs cat | md5sum")
            out = r.stdout.decode().split()
            return int(out[0]), out[1]

        # Named volume: created once per engine; checked to be one (what a container writes
        # there, the next one reads) before it is timed.
        named_errors = {}

        def prepare_named(e):
            e.cli("volume", "create", "benchvol")
            e.cli(*run, "-v", "benchvol:/data", img, "sh", "-c", "echo bench > /data/probe")
            got = e.cli(*run, "-v", "benchvol:/data", img, "cat", "/data/probe", check=False).stdout.decode().strip()
            if got != "bench":
                raise RuntimeError(f"{e.name}: a file written to volume benchvol by one container is not "
                                   f"there for the next (read {got!r})")
            e.cli(*run, "-v", "benchvol:/data", img, "rm", "/data/probe")
        for e in self.engines:
            self.guarded(prepare_named, named_errors)(e)

        def ten_runs(e):
            self.clear_volumes(e, keep=("benchvol",))
            times = [e.timed(*run, "-v", "benchvol:/data", img, "true") for _ in range(10)]
            return statistics.median(times)
        o, d = self.alternate(self.guarded(ten_runs, named_errors), rounds)
        self.record("volume_named_run", "docker run --rm --network none -v benchvol:/data IMG true, "
                    "an existing named volume (median of 10 per round)", "s", "lower", o, d, goal=5,
                    errors=named_errors, note="compare with run_none, the same without the volume")

        # Copy-up: each container of the image gets a new anonymous volume at /data, filled
        # from the image's /data at create, removed with the container (--rm, rm -v). Checked
        # once per engine before it is timed: the volume is there after create, with the
        # image's files, and is gone after rm -v and after run --rm.
        copy_errors = {}

        def prepare_copy(e):
            self.clear_volumes(e, keep=("benchvol",))
            e.cli("import", "-c", "VOLUME /data", "-c", 'CMD ["sh"]', tar, vimg)
            cid = e.cli("create", "--network", "none", vimg, "true").stdout.decode().strip()
            mounts = e.cli("inspect", "-f", '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{"\\n"}}{{end}}',
                           cid).stdout.decode().split("\n")
            mounts = [m for m in mounts if m.strip()]
            vols = [m.split()[1] for m in mounts if len(m.split()) == 3 and m.split()[0] == "volume"
                    and m.split()[2] == "/data"]
            if not vols:
                raise RuntimeError(f"{e.name}: a container of an image with VOLUME /data has no volume mounted "
                                   f"there (mounts: {mounts or 'none'})")
            files, got = volume_content(e, vols[0])
            if (files, got) != (n_files, digest):
                raise RuntimeError(f"{e.name}: after create, the anonymous volume holds {files} files (md5 {got}), "
                                   f"not the image's {n_files} (md5 {digest})")
            e.cli("rm", "-v", cid)
            if vols[0] in e.cli("volume", "ls", "-q").stdout.decode().split():
                raise RuntimeError(f"{e.name}: docker rm -v left the anonymous volume {vols[0]} behind")
            e.cli(*run, vimg, "true")
            left = [n for n in e.cli("volume", "ls", "-q").stdout.decode().split() if n != "benchvol"]
            if left:
                raise RuntimeError(f"{e.name}: docker run --rm left its anonymous volume {left} behind")
        for e in self.engines:
            self.guarded(prepare_copy, copy_errors)(e)

        create, rm = {"ours": [], "docker": []}, {"ours": [], "docker": []}

        def copy_up(e):
            # Each timed step starts with no volume left and no writeback pending from the
            # step or the engine before it.
            left = self.clear_volumes(e, keep=("benchvol",))
            if left:
                log(f"  {e.name}: removed volumes left over from the round before: {left}")
            os.sync()
            t = e.timed(*run, vimg, "true")
            os.sync()
            t0 = time.perf_counter()
            cid = e.cli("create", "--network", "none", vimg, "true").stdout.decode().strip()
            c = time.perf_counter() - t0
            os.sync()
            rm[e.name].append(e.timed("rm", "-v", cid))
            create[e.name].append(c)
            return t
        o, d = self.alternate(self.guarded(copy_up, copy_errors), rounds)
        self.record("volume_copyup_run", "docker run --rm --network none IMG true, first use of an image VOLUME "
                    "of 100 MiB in 5,000 files (copy-up)", "s", "lower", o, d, goal=1, errors=copy_errors,
                    note="the anonymous volume is created and filled from the image at create and removed by --rm")
        self.record("volume_copyup_create", "docker create of that image (the anonymous volume created and filled)",
                    "s", "lower", create["ours"][-rounds:], create["docker"][-rounds:], errors=copy_errors)
        self.record("volume_copyup_rm", "docker rm -v of that container (its volume of 5,000 files removed)",
                    "s", "lower", rm["ours"][-rounds:], rm["docker"][-rounds:], errors=copy_errors)

        for e in self.engines:
            try:
                self.clear_volumes(e)
                e.cli("rmi", vimg, check=False)
            except RuntimeError as err:
                log(f"  {e.name}: clean-up after the volume workloads failed: {err}")
        os.unlink(tar)


def make_layered_archive(work, layers=4, total=200 << 20):
    """A docker-archive (docker save format) of one image with `layers` layers,
    `total` bytes in all: each layer half random bytes, half text-like data that
    compresses (as real layers mix binaries and text)."""
    import hashlib
    import io
    import tarfile
    path = os.path.join(work, "layered.tar")
    per = total // layers
    diff_ids, layer_names = [], []
    out = tarfile.open(path, "w")
    for i in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            rnd = os.urandom(per // 2)
            words = b" ".join(b"layer%d-line%d lorem ipsum dolor sit amet" % (i, n) for n in range(per // 80))
            text = (words + b"\n")[: per - len(rnd)]
            for name, data in ((f"layer{i}/random.bin", rnd), (f"layer{i}/text.txt", text)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 1700000000
                t.addfile(info, io.BytesIO(data))
        data = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
        name = f"layer{i}/layer.tar"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
        layer_names.append(name)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z"} for _ in diff_ids],
    }).encode()
    cname = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cname, "RepoTags": ["127.0.0.1:5000/bench/layered:1"],
                            "Layers": layer_names}]).encode()
    for name, data in ((cname, config), ("manifest.json", manifest)):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    out.close()
    return path


class LocalRegistry:
    """The reference registry server inside an engine's network namespace, on
    127.0.0.1:5000, with fresh (empty) storage each time it starts."""

    def __init__(self, engine, work):
        self.engine, self.work, self.proc, self.n = engine, work, None, 0

    def start(self):
        self.stop()
        self.n += 1
        d = os.path.join(self.work, f"registry-{self.engine.name}-{self.n}")
        os.makedirs(d)
        cfg = os.path.join(d, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {d}/data\nhttp:\n  addr: 127.0.0.1:5000\n")
        self.dir = d
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.engine.netns, "docker-registry", "serve", cfg],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "wb"))
        enter = ["ip", "netns", "exec", self.engine.netns]
        deadline = time.time() + 30
        while subprocess.run(enter + ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5000/v2/"],
                             stderr=subprocess.DEVNULL).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the registry for {self.engine.name} did not start; see {d}/log")
            time.sleep(0.05)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None
            shutil.rmtree(self.dir, ignore_errors=True)


def svg_chart(results, meta):
    rows = [r for r in results if r["ratio"] is not None]
    width, left, bar_h, gap, top = 860, 430, 22, 10, 70
    height = top + len(rows) * (bar_h + gap) + 60
    max_ratio = max([r["ratio"] for r in rows] + [r["goal"] or 0 for r in rows] + [1]) * 1.1
    scale = (width - left - 40) / max_ratio
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">dockerd (systemd-native) vs Docker Engine 20.10: times better (median ratio)</text>',
           f'<text x="10" y="42" fill="#555">{meta["date"]} · {meta["machine"]} · {meta["command"]}</text>']
    x1 = left + scale
    out.append(f'<line x1="{x1:.1f}" y1="{top - 8}" x2="{x1:.1f}" y2="{height - 45}" stroke="#888" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x1 - 8:.1f}" y="{height - 30}" fill="#555">1× (equal)</text>')
    for i, r in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = max(r["ratio"] * scale, 1)
        color = "#2e7d32" if r["met"] and r["ratio"] >= 1 else ("#c62828" if not r["met"] else "#f9a825")
        title = r["title"].replace("&", "&amp;").replace("<", "&lt;")
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{title}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{r["ratio"]:.1f}×</text>')
        if r["goal"]:
            gx = left + r["goal"] * scale
            out.append(f'<line x1="{gx:.1f}" y1="{y - 3}" x2="{gx:.1f}" y2="{y + bar_h + 3}" stroke="black" stroke-width="2"/>')
    out.append(f'<text x="10" y="{height - 10}" fill="#555">Black ticks: goals. Green: goal met; red: missed; yellow: no goal, slower than Docker.</text>')
    out.append("</svg>")
    return "\n".join(out)


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 10 else f"{v:.2f} s"
    if unit == "req/s":
        return f"{v:,.0f}"
    return f"{v:.1f}"


def markdown_table(results):
    lines = ["| workload | ours (min / median / max) | Docker 20.10 (min / median / max) | ratio | goal |",
             "| --- | --- | --- | --- | --- |"]
    for r in results:
        u = r["unit"]
        o = r["ours"]
        d = r["docker"]
        errors = r.get("errors", {})

        def cell(name, s):
            if name in errors:
                msg = errors[name]
                return "failed: " + (msg if len(msg) <= 80 else msg[:77] + "…").replace("|", "\\|")
            return f"{fmt(s['min'], u)} / **{fmt(s['median'], u)}** / {fmt(s['max'], u)}" if s else "—"
        os_ = cell("ours", o)
        ds = cell("docker", d)
        unit = "" if u == "s" else f" {u}"
        ratio = f"{r['ratio']:.1f}×" if r["ratio"] is not None else "—"
        goal = (f"≥ {r['goal']}× {'**failed**' if errors else 'met' if r['met'] else '**missed**'}") if r["goal"] else ""
        lines.append(f"| {r['title']}{unit} | {os_} | {ds} | {ratio} | {goal} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--load-seconds", type=float, default=2.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results"))
    ap.add_argument("--only", action="append", choices=["startup", "run", "idle", "security", "logs", "parallel", "ports", "api", "image", "registry", "exec",
                                                        "volume", "restart", "resources", "filesystem", "build"],
                    help="run only these workload groups (repeatable; default: all)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    results = Bench(args).run()
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {os.uname().release}",
        "command": "sudo bench/compare.sh" + (f" --rounds {args.rounds}" if args.rounds != 10 else ""),
        "docker": subprocess.run([DOCKER_BIN, "--version"], stdout=subprocess.PIPE).stdout.decode().strip(),
        "rounds": args.rounds,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    with open(os.path.join(args.out, "chart.svg"), "w") as f:
        f.write(svg_chart(results, meta))
    table = markdown_table(results)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"\nresults: {args.out}/results.json, chart: {args.out}/chart.svg")


if __name__ == "__main__":
    main()
