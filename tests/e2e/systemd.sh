#!/usr/bin/env bash
# Step functions run through `step`, which shellcheck cannot follow.
# shellcheck disable=SC2317
#
# End-to-end test of the packaged dockerd under a real systemd.
#
#   tests/e2e/systemd.sh [DEB [RPM]]     # default: the newest dist/dockerd_*.deb and dist/dockerd-*.rpm
#
# Boots Debian bookworm (debootstrap --variant=minbase plus systemd and dbus) with
# `systemd-nspawn --boot`, installs the .deb with dpkg, and checks, step by step,
# what an administrator relies on: socket activation, readiness and status,
# native journal records, reload, the watchdog, socket permissions, a clean stop,
# an exit when idle (idle-timeout) and the start again on the next request,
# containers (docker load, attached and detached runs) kept running across
# restarts, a stop and start, the idle exit and the upgrade,
# upgrade over the installed package, remove and purge.
# Each step prints PASS or FAIL; the last line is "N passed, M failed", and the
# exit status is non-zero when anything failed.
#
# Runs as root. Installs what it needs from Debian's archive (debootstrap,
# systemd-container, rpm, jq). The bootstrapped root is cached under
# /var/cache/dockerd-e2e (override: DOCKERD_E2E_CACHE) and copied for each run,
# so a second run skips debootstrap. The docker CLI copied into the guest is
# $DOCKER_CLI, else the one on PATH. The Debian mirror is the one apt uses here
# (override: DOCKERD_E2E_MIRROR).
#
# The host need not run systemd: the container is started with --register=no
# --keep-unit, and commands run in it through nsenter into its PID 1's namespaces.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SUITE=bookworm
# procps (/bin/kill) and iptables (the firewall of container networks) are
# dependencies of the package, installed beforehand because dpkg -i does not fetch
# dependencies.
INCLUDE=systemd,systemd-sysv,dbus,curl,procps,iptables
# Bump when the preparation of the cached root changes.
ROOT_RECIPE=2
CACHE_DIR=${DOCKERD_E2E_CACHE:-/var/cache/dockerd-e2e}
MACHINE=dockerd-e2e
GUEST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

passed=0
failed=0
work=""
nspawn_pid=""
guest_pid=""
background_pids=()
# The detached container the steps follow, and its PID on the host.
IMG=fixture/busybox:1.35
web_pid=""

log() { echo "    $*"; }
die() {
    echo "FAIL: setup: $*"
    failed=$((failed + 1))
    finish
}

# ---- running steps -------------------------------------------------------------

# step NAME FUNCTION: runs FUNCTION, prints PASS/FAIL NAME.
step() {
    local name=$1
    shift
    echo "--- $name"
    if "$@"; then
        echo "PASS: $name"
        passed=$((passed + 1))
    else
        echo "FAIL: $name"
        failed=$((failed + 1))
    fi
}

# expect WHAT EXPECTED ACTUAL: equality, explained on failure.
expect() {
    [[ "$2" == "$3" ]] && return 0
    log "$1: expected '$2', got '$3'"
    return 1
}

# wait_until TIMEOUT_SECONDS COMMAND...: polls COMMAND every half second.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# ---- the guest -------------------------------------------------------------------

# g COMMAND...: runs COMMAND in the guest, with a clean environment.
g() {
    nsenter -t "$guest_pid" -a -- env -i PATH="$GUEST_PATH" HOME=/root LANG=C.UTF-8 \
        TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# prop UNIT PROPERTY: a unit property's value (systemctl show --value).
prop() {
    g systemctl show --value -p "$2" "$1"
}

state_is() { # state_is UNIT ACTIVESTATE
    [[ "$(prop "$1" ActiveState)" == "$2" ]]
}

# cursor: the journal position now, for reading what comes after it.
cursor() {
    g journalctl -q -n 1 -o json --no-pager | jq -r '.__CURSOR'
}

# journal_after CURSOR [journalctl args...]: records after CURSOR, one JSON per line.
journal_after() {
    local c=$1
    shift
    g journalctl -q --no-pager -o json --after-cursor="$c" "$@"
}

# journal_has CURSOR JQ_FILTER [journalctl args...]: a record after CURSOR matches.
journal_has() {
    local c=$1 filter=$2
    shift 2
    [[ -n "$(journal_after "$c" "$@" | jq -c "select($filter)" | head -n 1)" ]]
}

ping_ok() { # ping_ok: GET /_ping on the guest's /run/docker.sock answers OK.
    [[ "$(g curl -sS --max-time 30 --unix-socket /run/docker.sock http://d/_ping 2>&1)" == OK ]]
}

debian_mirror() {
    if [[ -n "${DOCKERD_E2E_MIRROR:-}" ]]; then
        echo "$DOCKERD_E2E_MIRROR"
        return
    fi
    local uri
    # deb822 "URIs:" lines and one-line "deb [options] URI suite ..." entries; the
    # main archive is the URI whose path ends in /debian (not debian-security).
    for uri in $( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n 's/^[[:space:]]*URIs:[[:space:]]*//p'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p')); do
        if [[ "$uri" =~ ^https?://[^[:space:]]+/debian/?$ ]]; then
            echo "${uri%/}"
            return
        fi
    done
    echo http://deb.debian.org/debian
}

install_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v rpm >/dev/null || missing+=(rpm)
    command -v jq >/dev/null || missing+=(jq)
    command -v nsenter >/dev/null || missing+=(util-linux)
    [[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
    ((${#missing[@]} == 0)) && return 0
    echo "==> installing ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# The pristine root, bootstrapped once and kept under CACHE_DIR.
cached_root() {
    local key dir tmp mirror
    key=$(echo "$SUITE minbase $INCLUDE $ROOT_RECIPE" | sha256sum | cut -c1-12)
    dir=$CACHE_DIR/$SUITE-$key
    if [[ -f "$dir/.complete" ]]; then
        echo "==> using cached root $dir" >&2
        echo "$dir"
        return 0
    fi
    mirror=$(debian_mirror)
    mkdir -p "$CACHE_DIR" || return 1
    tmp=$(mktemp -d "$CACHE_DIR/.bootstrap.XXXXXX") || return 1
    # The guest's / : mktemp made it 0700, which locks out every service user.
    chmod 0755 "$tmp"
    echo "==> debootstrap $SUITE from $mirror into $dir (cached for next runs)" >&2
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp" "$mirror" \
        >"$tmp.log" 2>&1; then
        tail -n 20 "$tmp.log" >&2
        rm -rf --one-file-system "$tmp" "$tmp.log"
        return 1
    fi
    # A quiet guest: no login prompt on the console, no periodic jobs.
    systemctl --root="$tmp" mask --quiet console-getty.service getty@.service \
        apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        systemd-tmpfiles-clean.timer >&2 || return 1
    echo "$MACHINE" >"$tmp/etc/hostname"
    touch "$tmp/.complete"
    rm -f "$tmp.log"
    rm -rf --one-file-system "$dir"
    mv -T "$tmp" "$dir" || return 1
    echo "$dir"
}

# Empty cgroups nspawn may leave in the host's unified hierarchy make the next
# boot fail with "Device or resource busy".
# They may hold empty cgroups of their own (the guest's init.scope): children first.
remove_nspawn_cgroups() {
    local d
    for d in /sys/fs/cgroup/unified/payload /sys/fs/cgroup/unified/supervisor; do
        [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    return 0
}

boot_guest() {
    local root=$1 child
    remove_nspawn_cgroups
    # Containers run in the guest: a writable cgroup v2 hierarchy of its own (on a
    # hybrid host, without controllers), every capability, and bpf (device
    # programs) and the keyring calls allowed through nspawn's own filter.
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --boot --register=no --keep-unit \
        --private-network --console=passive --capability=all \
        --system-call-filter='bpf keyctl add_key' \
        --machine="$MACHINE" -D "$root" >"$work/console.log" 2>&1 </dev/null &
    nspawn_pid=$!
    # The container's PID 1 is nspawn's child once it has exec'd systemd.
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        kill -0 "$nspawn_pid" 2>/dev/null || {
            tail -n 20 "$work/console.log"
            return 1
        }
        for child in $(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null); do
            if [[ "$(cat /proc/"$child"/comm 2>/dev/null)" == systemd ]]; then
                guest_pid=$child
                break 2
            fi
        done
        sleep 0.2
    done
    [[ -n "$guest_pid" ]] || {
        echo "the container's systemd did not start within 60s" >&2
        return 1
    }
    # systemctl reaches the guest's manager through this socket, once it exists.
    wait_until 60 test -S "/proc/$guest_pid/root/run/systemd/private" || {
        echo "the guest's systemd did not open /run/systemd/private within 60s" >&2
        return 1
    }
    local running
    running=$(timeout 120 nsenter -t "$guest_pid" -a -- systemctl is-system-running --wait 2>&1)
    if [[ "$running" != running && "$running" != degraded ]]; then
        echo "the guest's systemd did not finish booting: '$running'" >&2
        tail -n 20 "$work/console.log" >&2
        return 1
    fi
    [[ "$running" == running ]] || g systemctl --failed --no-legend --no-pager >&2
}

# Shuts the container down (orderly first) and removes the work directory.
teardown() {
    local p
    for p in "${background_pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    background_pids=()
    if [[ -n "$nspawn_pid" ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM asks nspawn for an orderly shutdown of the booted container.
        kill -TERM "$nspawn_pid" 2>/dev/null
        local deadline=$((SECONDS + 60))
        while kill -0 "$nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            echo "    container did not shut down within 60s; killing it"
            kill -KILL "$nspawn_pid" 2>/dev/null
        fi
        wait "$nspawn_pid" 2>/dev/null
    fi
    nspawn_pid=""
    remove_nspawn_cgroups
    if [[ -n "$work" && -d "$work" ]]; then
        if findmnt -rn -o TARGET | grep -q "^$work/"; then
            echo "    something is still mounted under $work; leaving it in place"
        else
            rm -rf --one-file-system "$work"
        fi
    fi
    work=""
}

# Processes still running from the guest's root (none may survive the test).
leftovers() {
    local p root=$1
    for p in /proc/[0-9]*; do
        if [[ "$(readlink "$p/root" 2>/dev/null)" == "$root" ]]; then
            echo "${p#/proc/}"
        fi
    done
}

finish() {
    local root=""
    [[ -n "$work" ]] && root=$work/root
    teardown
    if [[ -n "$root" ]]; then
        local left
        left=$(leftovers "$root")
        if [[ -n "$left" ]]; then
            echo "FAIL: no processes left behind (still running: $left)"
            failed=$((failed + 1))
        fi
    fi
    echo "$passed passed, $failed failed"
    trap - EXIT
    ((failed == 0)) && exit 0
    exit 1
}

# ---- the steps -------------------------------------------------------------------

deb=""
rpm_file=""
version=""

step_install() {
    local ok=0 out
    out=$(g dpkg -i /root/dockerd.deb 2>&1) || {
        echo "$out" | sed 's/^/    /'
        log "dpkg -i failed"
        return 1
    }
    g getent group docker >/dev/null || {
        log "group docker was not created"
        ok=1
    }
    expect "dockerd.socket enabled by the preset" enabled "$(g systemctl is-enabled dockerd.socket)" || ok=1
    expect "dockerd.service left alone (the socket starts it)" disabled \
        "$(g systemctl is-enabled dockerd.service)" || ok=1
    local f
    for f in /usr/bin/dockerd /usr/lib/systemd/system/dockerd.service \
        /usr/lib/systemd/system/dockerd.socket /usr/lib/sysusers.d/dockerd.conf \
        /usr/share/man/man8/dockerd.8.gz /usr/share/bash-completion/completions/dockerd \
        /usr/share/zsh/vendor-completions/_dockerd \
        /usr/share/fish/vendor_completions.d/dockerd.fish \
        /usr/share/doc/dockerd/examples/daemon.json; do
        g test -f "$f" || {
            log "$f is not installed"
            ok=1
        }
    done
    g sh -c 'zcat /usr/share/man/man8/dockerd.8.gz | grep -qF "shutdown\\-timeout"' || {
        log "the man page does not document --shutdown-timeout"
        ok=1
    }
    out=$(g dockerd --validate --config-file /usr/share/doc/dockerd/examples/daemon.json 2>&1)
    expect "the example daemon.json validates" "configuration OK" "$out" || ok=1
    out=$(dpkg-deb -f "$deb" Conflicts)
    expect ".deb Conflicts" "docker.io, docker-ce, moby-engine" "$out" || ok=1
    out=$(dpkg-deb -f "$deb" Replaces)
    expect ".deb Replaces" "docker.io, docker-ce, moby-engine" "$out" || ok=1
    out=$(dpkg-deb -f "$deb" Depends)
    [[ "$out" == *libc6* && "$out" == *procps* ]] || {
        log ".deb Depends should be worked out from the binary (libc6 ...) and name procps (/bin/kill), got '$out'"
        ok=1
    }
    # Not started by the package: the README's next command does that.
    expect "dockerd.socket right after installation" inactive "$(prop dockerd.socket ActiveState)" || ok=1
    return $ok
}

step_socket_listens() {
    local ok=0 out
    out=$(g systemctl start dockerd.socket 2>&1) || {
        log "systemctl start dockerd.socket: $out"
        return 1
    }
    expect "dockerd.socket ActiveState" active "$(prop dockerd.socket ActiveState)" || ok=1
    expect "dockerd.socket SubState" listening "$(prop dockerd.socket SubState)" || ok=1
    expect "dockerd.service ActiveState" inactive "$(prop dockerd.service ActiveState)" || ok=1
    expect "/run/docker.sock mode and owner" "srw-rw---- root:docker" \
        "$(g stat -c '%A %U:%G' /run/docker.sock 2>&1)" || ok=1
    return $ok
}

step_activation() {
    local ok=0 out pid
    out=$(g curl -sS --max-time 60 --unix-socket /run/docker.sock http://d/_ping 2>&1)
    expect "GET /_ping through the socket" OK "$out" || ok=1
    out=$(g docker version --format '{{.Server.Version}}' 2>&1)
    expect "docker version (server)" "$version" "$out" || ok=1
    expect "dockerd.service ActiveState" active "$(prop dockerd.service ActiveState)" || ok=1
    expect "dockerd.service SubState" running "$(prop dockerd.service SubState)" || ok=1
    out=$(prop dockerd.service StatusText)
    [[ "$out" == "Ready: listening on /run/docker.sock"* ]] || {
        log "StatusText should come from the daemon ('Ready: listening on /run/docker.sock; ...'), got '$out'"
        ok=1
    }
    pid=$(prop dockerd.service MainPID)
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] || {
        log "MainPID: '$pid'"
        return 1
    }
    expect "command of MainPID $pid" dockerd "$(g cat /proc/"$pid"/comm 2>&1)" || ok=1
    expect "/run/docker.pid" "$pid" "$(g cat /run/docker.pid 2>&1)" || ok=1
    return $ok
}

# web_alive: the detached container still runs (the same process), and the
# daemon knows it as running.
web_alive() {
    g kill -0 "$web_pid" 2>/dev/null || {
        log "the container's process $web_pid is gone"
        return 1
    }
    expect "docker inspect web (State.Status State.Pid)" "running $web_pid" \
        "$(g docker inspect -f '{{.State.Status}} {{.State.Pid}}' web 2>&1)"
}

step_containers() {
    local ok=0 out
    out=$(g docker load -i /root/busybox.tar 2>&1)
    expect "docker load" "Loaded image: $IMG" "$out" || return 1
    out=$(g docker run --rm --network none "$IMG" echo hello from a container 2>&1)
    expect "docker run (attached)" "hello from a container" "$out" || ok=1
    out=$(g docker run -d --name web --network none "$IMG" sleep 100000 2>&1) || {
        log "docker run -d: $out"
        return 1
    }
    web_pid=$(g docker inspect -f '{{.State.Pid}}' web)
    log "container web runs as PID $web_pid, in $(g cat /proc/"$web_pid"/cgroup) (cgroup driver $(g docker info -f '{{.CgroupDriver}}'))"
    expect "docker exec web" ok "$(g docker exec web echo ok 2>&1)" || ok=1
    out=$(g systemctl restart dockerd 2>&1) || {
        log "systemctl restart dockerd: $out"
        return 1
    }
    web_alive || ok=1
    expect "docker exec web after the restart" ok "$(g docker exec web echo ok 2>&1)" || ok=1
    return $ok
}

step_containers_survive() {
    local ok=0 out
    web_alive || ok=1
    expect "docker exec web" ok "$(g docker exec web echo ok 2>&1)" || ok=1
    out=$(g docker rm -f web 2>&1) || {
        log "docker rm -f web: $out"
        ok=1
    }
    wait_until 20 bash -c "! nsenter -t $guest_pid -a kill -0 $web_pid 2>/dev/null" || {
        log "the container's process $web_pid outlived docker rm -f"
        ok=1
    }
    return $ok
}

step_journal() {
    local ok=0 records n
    records=$(g journalctl -q --no-pager -o json -u dockerd)
    n=$(jq -s '[.[] | select(.SYSLOG_IDENTIFIER == "dockerd")] | length' <<<"$records")
    ((n > 0)) || {
        log "no records with SYSLOG_IDENTIFIER=dockerd in journalctl -u dockerd"
        return 1
    }
    log "$n records from the daemon"
    n=$(jq -s '[.[] | select(.SYSLOG_IDENTIFIER == "dockerd" and ._TRANSPORT != "journal")] | length' <<<"$records")
    expect "daemon records not sent over the native protocol" 0 "$n" || ok=1
    n=$(jq -s '[.[] | select(._TRANSPORT == "stdout")] | length' <<<"$records")
    expect "records written as text to stdout/stderr" 0 "$n" || ok=1
    local ready
    ready=$(jq -c 'select(.MESSAGE == "Daemon has completed initialization")' <<<"$records" | tail -n 1)
    [[ -n "$ready" ]] || {
        log "no 'Daemon has completed initialization' record"
        return 1
    }
    expect "PRIORITY of an info record" 6 "$(jq -r .PRIORITY <<<"$ready")" || ok=1
    expect "_TRANSPORT" journal "$(jq -r ._TRANSPORT <<<"$ready")" || ok=1
    expect "SYSLOG_IDENTIFIER" dockerd "$(jq -r .SYSLOG_IDENTIFIER <<<"$ready")" || ok=1
    expect "TARGET (structured field)" dockerd::daemon "$(jq -r .TARGET <<<"$ready")" || ok=1
    [[ "$(jq -r .CODE_FILE <<<"$ready")" == *daemon/mod.rs ]] || {
        log "CODE_FILE: $(jq -r .CODE_FILE <<<"$ready")"
        ok=1
    }
    expect "_PID is the MainPID" "$(prop dockerd.service MainPID)" "$(jq -r ._PID <<<"$ready")" || ok=1
    return $ok
}

# The journald log driver: a container whose lines go to the journal from its
# monitor. It prints a line each time /go appears in it (and removes it).
jlog_pid=
jlog_line() { # jlog_line: has the container print one more line.
    g nsenter -t "$jlog_pid" -m -- touch /go
}
journal_of_jlog() { # journal_of_jlog: its records, one JSON per line.
    g journalctl -q --no-pager -o json CONTAINER_NAME=jlog
}
jlog_has() { # jlog_has MESSAGE: the journal has a record of jlog with MESSAGE.
    [[ -n "$(journal_of_jlog | jq -c --arg m "$1" 'select(.MESSAGE == $m)' | head -n 1)" ]]
}
jlog_newest_line() { # the last "line …" record of jlog
    journal_of_jlog | jq -r 'select(.MESSAGE | startswith("line ")) | .MESSAGE' | tail -n 1
}
jlog_changed() { [[ "$(jlog_newest_line)" != "$down_before" ]]; }

step_container_journal() {
    local ok=0 out rec id follow
    id=$(g docker run -d --name jlog --network none --log-driver journald \
        --log-opt tag='{{.Name}}/{{.ImageName}}' --label tier=front --log-opt labels=tier \
        "$IMG" sh -c 'echo hello journal; echo oops >&2
            while sleep 0.2; do [ -e /go ] && { echo "line $(date +%s%N)"; rm /go; }; done' 2>&1) || {
        log "docker run --log-driver journald: $id"
        return 1
    }
    jlog_pid=$(g docker inspect -f '{{.State.Pid}}' jlog)
    wait_until 20 jlog_has oops || {
        log "no record of the container in the journal: $(journal_of_jlog)"
        return 1
    }
    log "journalctl CONTAINER_NAME=jlog -o verbose:"
    g journalctl -q --no-pager -o verbose CONTAINER_NAME=jlog | sed 's/^/      /'
    rec=$(journal_of_jlog | jq -c 'select(.MESSAGE == "hello journal")')
    expect "PRIORITY (stdout)" 6 "$(jq -r .PRIORITY <<<"$rec")" || ok=1
    expect "PRIORITY (stderr)" 3 "$(journal_of_jlog | jq -r 'select(.MESSAGE == "oops") | .PRIORITY')" || ok=1
    expect "CONTAINER_ID" "${id:0:12}" "$(jq -r .CONTAINER_ID <<<"$rec")" || ok=1
    expect "CONTAINER_ID_FULL" "$id" "$(jq -r .CONTAINER_ID_FULL <<<"$rec")" || ok=1
    expect "CONTAINER_TAG" "jlog/$IMG" "$(jq -r .CONTAINER_TAG <<<"$rec")" || ok=1
    expect "SYSLOG_IDENTIFIER" "jlog/$IMG" "$(jq -r .SYSLOG_IDENTIFIER <<<"$rec")" || ok=1
    expect "IMAGE_NAME" "$IMG" "$(jq -r .IMAGE_NAME <<<"$rec")" || ok=1
    expect "TIER (labels option)" front "$(jq -r .TIER <<<"$rec")" || ok=1
    expect "_TRANSPORT" journal "$(jq -r ._TRANSPORT <<<"$rec")" || ok=1
    expect "docker logs (stdout)" "hello journal" "$(g docker logs jlog 2>/dev/null)" || ok=1
    expect "docker logs (stderr)" oops "$(g docker logs jlog 2>&1 >/dev/null)" || ok=1
    # docker logs -f: a line printed while it follows arrives.
    g rm -f /root/follow.out
    g sh -c 'timeout 20 docker logs -f --tail 0 jlog > /root/follow.out 2>&1 &'
    sleep 1
    jlog_line
    wait_until 15 g grep -q '^line ' /root/follow.out || {
        log "docker logs -f showed: $(g cat /root/follow.out)"
        ok=1
    }
    follow=$(g cat /root/follow.out)
    log "docker logs -f --tail 0 showed: $follow"
    return $ok
}

# While the daemon is stopped (after step_stop), the monitor still logs.
step_journal_while_stopped() {
    local ok=0
    expect "dockerd.service ActiveState" inactive "$(prop dockerd.service ActiveState)" || return 1
    down_before=$(jlog_newest_line)
    jlog_line
    wait_until 20 jlog_changed || {
        log "no new record while the daemon was stopped"
        return 1
    }
    down_line=$(jlog_newest_line)
    log "logged while the daemon was stopped: $down_line"
    expect "dockerd.service ActiveState afterwards" inactive "$(prop dockerd.service ActiveState)" || ok=1
    return $ok
}

# After step_reactivation: docker logs reads that line back from the journal.
step_journal_read_back() {
    local ok=0 out
    out=$(g docker logs jlog 2>/dev/null)
    grep -qx "$down_line" <<<"$out" || {
        log "docker logs jlog lacks '$down_line': $out"
        ok=1
    }
    out=$(g docker rm -f jlog 2>&1) || {
        log "docker rm -f jlog: $out"
        ok=1
    }
    return $ok
}

step_reload() {
    local ok=0 c pid out
    pid=$(prop dockerd.service MainPID)
    g mkdir -p /etc/docker
    echo '{"debug": true}' | g tee /etc/docker/daemon.json >/dev/null
    c=$(cursor)
    out=$(g systemctl reload dockerd 2>&1) || {
        log "systemctl reload dockerd: $out"
        return 1
    }
    wait_until 30 state_is dockerd.service active || {
        log "dockerd.service did not return to active: $(prop dockerd.service ActiveState)"
        ok=1
    }
    expect "MainPID after reload (same process)" "$pid" "$(prop dockerd.service MainPID)" || ok=1
    wait_until 20 journal_has "$c" '.MESSAGE == "Reloaded configuration: debug: false -> true" and .PRIORITY == "6"' -u dockerd || {
        log "no info record 'Reloaded configuration: debug: false -> true'"
        ok=1
    }
    ping_ok || {
        log "GET /_ping after reload failed"
        ok=1
    }
    wait_until 20 journal_has "$c" '.MESSAGE == "Calling GET /_ping" and .PRIORITY == "7" and .API_PATH == "/_ping"' -u dockerd || {
        log "no debug record 'Calling GET /_ping' with PRIORITY=7 and API_PATH=/_ping"
        ok=1
    }
    # Filtering by a structured field, as the README shows.
    local matched total other
    matched=$(g journalctl -q --no-pager -o json -u dockerd API_PATH=/_ping)
    total=$(jq -s 'length' <<<"$matched")
    other=$(jq -s '[.[] | select(.API_PATH != "/_ping")] | length' <<<"$matched")
    ((total > 0 && other == 0)) || {
        log "journalctl -u dockerd API_PATH=/_ping: $total records, $other of them without API_PATH=/_ping"
        ok=1
    }
    out=$(prop dockerd.service StatusText)
    [[ "$out" == Ready:* ]] || {
        log "StatusText after reload: '$out'"
        ok=1
    }
    return $ok
}

step_reload_broken() {
    local ok=0 c pid out
    pid=$(prop dockerd.service MainPID)
    printf '{"debug": false,\n' | g tee /etc/docker/daemon.json >/dev/null
    c=$(cursor)
    out=$(g systemctl reload dockerd 2>&1) || {
        log "systemctl reload dockerd: $out"
        ok=1
    }
    wait_until 30 state_is dockerd.service active || {
        log "dockerd.service did not return to active: $(prop dockerd.service ActiveState)"
        ok=1
    }
    expect "MainPID (the daemon kept running)" "$pid" "$(prop dockerd.service MainPID)" || ok=1
    wait_until 20 journal_has "$c" '.PRIORITY == "3" and (.MESSAGE | startswith("Error reloading configuration, keeping the current one")) and (.MESSAGE | contains("invalid JSON"))' -u dockerd || {
        log "no error record 'Error reloading configuration, keeping the current one: ... invalid JSON ...'"
        ok=1
    }
    # Still debug: the old configuration stays in force.
    c=$(cursor)
    ping_ok || ok=1
    wait_until 20 journal_has "$c" '.MESSAGE == "Calling GET /_ping" and .PRIORITY == "7"' -u dockerd || {
        log "debug records stopped: the broken file changed the configuration"
        ok=1
    }
    # Later steps restart the daemon, which must find a valid file.
    echo '{"debug": true}' | g tee /etc/docker/daemon.json >/dev/null
    return $ok
}

step_watchdog() {
    local ok=0 c old new out curl_pid
    g mkdir -p /etc/systemd/system/dockerd.service.d
    printf '[Service]\nWatchdogSec=2s\n' | g tee /etc/systemd/system/dockerd.service.d/watchdog.conf >/dev/null
    g systemctl daemon-reload
    out=$(g systemctl restart dockerd 2>&1) || {
        log "systemctl restart dockerd: $out"
        return 1
    }
    expect "WatchdogUSec" 2s "$(prop dockerd.service WatchdogUSec)" || ok=1
    old=$(prop dockerd.service MainPID)
    # Several periods pass with a healthy daemon: its pings keep it alive.
    sleep 5
    expect "MainPID of a healthy daemon after 5s of WatchdogSec=2s" "$old" "$(prop dockerd.service MainPID)" || return 1
    c=$(cursor)
    g kill -STOP "$old"
    # Sent while the daemon cannot answer: it waits in the socket's queue.
    g curl -sS --max-time 120 --unix-socket /run/docker.sock http://d/_ping >"$work/watchdog-curl.out" 2>&1 &
    curl_pid=$!
    background_pids+=("$curl_pid")
    wait_until 60 journal_has "$c" '(.MESSAGE // "" | tostring | test("Watchdog timeout"))' -u dockerd || {
        log "the journal shows no watchdog timeout"
        ok=1
    }
    new_pid() {
        local p
        p=$(prop dockerd.service MainPID)
        [[ "$p" != 0 && "$p" != "$old" ]] && state_is dockerd.service active
    }
    wait_until 60 new_pid || {
        log "no new daemon after the watchdog timeout (MainPID $(prop dockerd.service MainPID), $(prop dockerd.service ActiveState))"
        ok=1
    }
    new=$(prop dockerd.service MainPID)
    log "daemon $old killed by the watchdog, restarted as $new"
    local n
    n=$(prop dockerd.service NRestarts)
    [[ "$n" =~ ^[1-9] ]] || {
        log "NRestarts: '$n'"
        ok=1
    }
    wait_until 60 bash -c "! kill -0 $curl_pid 2>/dev/null"
    expect "the request sent while the daemon was hung" OK "$(cat "$work/watchdog-curl.out")" || ok=1
    # Back to the packaged unit's settings.
    g rm -f /etc/systemd/system/dockerd.service.d/watchdog.conf
    g systemctl daemon-reload
    g systemctl restart dockerd || ok=1
    expect "WatchdogUSec of the packaged unit" 30s "$(prop dockerd.service WatchdogUSec)" || ok=1
    return $ok
}

step_permissions() {
    local ok=0 out
    g useradd --create-home alice || return 1
    as_alice() { g runuser -u alice -- env HOME=/home/alice "$@"; }
    if out=$(as_alice docker version --format '{{.Server.Version}}' 2>&1); then
        log "alice, outside group docker, reached the daemon: $out"
        ok=1
    elif [[ "$out" != *"permission denied"* ]]; then
        log "alice's error should say 'permission denied', got: $out"
        ok=1
    fi
    out=$(as_alice curl -sS --unix-socket /run/docker.sock http://d/_ping 2>&1) && {
        log "alice's curl reached the daemon"
        ok=1
    }
    g usermod -a -G docker alice || return 1
    out=$(as_alice docker version --format '{{.Server.Version}}' 2>&1)
    expect "docker version as alice in group docker" "$version" "$out" || ok=1
    return $ok
}

step_stop() {
    local ok=0 c out
    # At debug level systemd logs each notification it receives (STOPPING=1).
    g systemd-analyze log-level debug
    c=$(cursor)
    out=$(g systemctl stop dockerd.socket dockerd 2>&1) || {
        log "systemctl stop: $out"
        ok=1
    }
    g systemd-analyze log-level info
    expect "dockerd.service ActiveState" inactive "$(prop dockerd.service ActiveState)" || ok=1
    expect "dockerd.socket ActiveState" inactive "$(prop dockerd.socket ActiveState)" || ok=1
    expect "dockerd.service Result" success "$(prop dockerd.service Result)" || ok=1
    expect "exit status" 0 "$(prop dockerd.service ExecMainStatus)" || ok=1
    journal_has "$c" '(.MESSAGE // "" | tostring | test("notification message.*STOPPING=1"))' || {
        log "systemd received no STOPPING=1 from the daemon"
        ok=1
    }
    journal_has "$c" '.MESSAGE == "Daemon shutdown complete"' -u dockerd || {
        log "no 'Daemon shutdown complete' record"
        ok=1
    }
    g test ! -e /run/docker.pid || {
        log "/run/docker.pid is still there"
        ok=1
    }
    # Containers keep running while the daemon is stopped (live-restore).
    g kill -0 "$web_pid" 2>/dev/null || {
        log "the container's process $web_pid did not outlive the stop"
        ok=1
    }
    return $ok
}

step_reactivation() {
    local ok=0 out
    out=$(g systemctl start dockerd.socket 2>&1) || {
        log "systemctl start dockerd.socket: $out"
        return 1
    }
    expect "dockerd.service before the first request" inactive "$(prop dockerd.service ActiveState)" || ok=1
    ping_ok || {
        log "GET /_ping after starting the socket again failed"
        ok=1
    }
    expect "dockerd.service after the request" active "$(prop dockerd.service ActiveState)" || ok=1
    web_alive || ok=1
    return $ok
}

step_idle_exit() {
    local ok=0 c pid out
    pid=$(prop dockerd.service MainPID)
    echo '{"idle-timeout": 3}' | g tee /etc/docker/daemon.json >/dev/null
    c=$(cursor)
    out=$(g systemctl reload dockerd 2>&1) || {
        log "systemctl reload dockerd: $out"
        return 1
    }
    wait_until 60 state_is dockerd.service inactive || {
        log "dockerd.service did not stop when idle: $(prop dockerd.service ActiveState)"
        return 1
    }
    expect "dockerd.service Result" success "$(prop dockerd.service Result)" || ok=1
    expect "exit status" 0 "$(prop dockerd.service ExecMainStatus)" || ok=1
    expect "dockerd.socket ActiveState" active "$(prop dockerd.socket ActiveState)" || ok=1
    journal_has "$c" '.MESSAGE | tostring | startswith("Daemon idle for 3s: exiting")' -u dockerd || {
        log "no 'Daemon idle for 3s: exiting' record"
        ok=1
    }
    out=$(g docker ps --format '{{.Names}}' 2>&1) || {
        log "docker ps after the idle exit: $out"
        ok=1
    }
    expect "dockerd.service after the next request" active "$(prop dockerd.service ActiveState)" || ok=1
    [[ "$(prop dockerd.service MainPID)" != "$pid" ]] || {
        log "MainPID did not change: the daemon did not exit"
        ok=1
    }
    # A plain running container did not hold the daemon, and is found again.
    web_alive || ok=1
    expect "docker exec web after the idle exit" ok "$(g docker exec web echo ok 2>&1)" || ok=1
    # Later steps want a daemon that stays.
    echo '{}' | g tee /etc/docker/daemon.json >/dev/null
    g systemctl reload dockerd || ok=1
    return $ok
}

step_upgrade() {
    local ok=0 out before after
    ping_ok || {
        log "the daemon does not answer before the upgrade"
        return 1
    }
    before=$(prop dockerd.service MainPID)
    # Installing over the installed package is Debian's upgrade path: prerm upgrade,
    # then postinst configure OLD-VERSION, which restarts a running daemon.
    out=$(g dpkg -i /root/dockerd.deb 2>&1) || {
        echo "$out" | sed 's/^/    /'
        log "dpkg -i over the installed package failed"
        return 1
    }
    wait_until 30 state_is dockerd.service active || {
        log "dockerd.service is $(prop dockerd.service ActiveState) after the upgrade"
        ok=1
    }
    after=$(prop dockerd.service MainPID)
    [[ "$after" != 0 && "$after" != "$before" ]] || {
        log "the upgrade did not restart the daemon (MainPID $before, then $after)"
        ok=1
    }
    expect "dockerd.socket after the upgrade" active "$(prop dockerd.socket ActiveState)" || ok=1
    expect "dockerd.socket still enabled" enabled "$(g systemctl is-enabled dockerd.socket)" || ok=1
    ping_ok || {
        log "GET /_ping after the upgrade failed"
        ok=1
    }
    return $ok
}

step_remove_purge() {
    local ok=0 out
    out=$(g dpkg -r dockerd 2>&1) || {
        echo "$out" | sed 's/^/    /'
        log "dpkg -r failed"
        return 1
    }
    expect "dockerd.service after remove" inactive "$(prop dockerd.service ActiveState)" || ok=1
    expect "dockerd.socket after remove" inactive "$(prop dockerd.socket ActiveState)" || ok=1
    expect "dockerd.socket unit after remove" not-found "$(prop dockerd.socket LoadState)" || ok=1
    g test ! -e /usr/bin/dockerd || {
        log "/usr/bin/dockerd is still there after remove"
        ok=1
    }
    g getent group docker >/dev/null || {
        log "remove deleted group docker (it may carry other users' membership)"
        ok=1
    }
    g test -L /etc/systemd/system/sockets.target.wants/dockerd.socket || {
        log "remove (not purge) dropped the socket's enablement"
        ok=1
    }
    out=$(g dpkg -P dockerd 2>&1) || {
        echo "$out" | sed 's/^/    /'
        log "dpkg -P failed"
        return 1
    }
    g test ! -e /etc/systemd/system/sockets.target.wants/dockerd.socket || {
        log "purge left the socket's enablement link"
        ok=1
    }
    # shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
    expect "dpkg status after purge" "" "$(g dpkg-query -W -f='${db:Status-Abbrev}' dockerd 2>/dev/null)" || ok=1
    return $ok
}

step_rpm() {
    local ok=0 files f scripts
    files=$(rpm -qlp "$rpm_file" 2>&1) || {
        log "rpm -qlp $rpm_file: $files"
        return 1
    }
    for f in /usr/bin/dockerd /usr/lib/systemd/system/dockerd.service \
        /usr/lib/systemd/system/dockerd.socket /usr/lib/sysusers.d/dockerd.conf \
        /usr/share/man/man8/dockerd.8.gz /usr/share/bash-completion/completions/dockerd \
        /usr/share/zsh/site-functions/_dockerd /usr/share/fish/vendor_completions.d/dockerd.fish \
        /usr/share/doc/dockerd/examples/daemon.json; do
        grep -qxF "$f" <<<"$files" || {
            log "the .rpm does not contain $f"
            ok=1
        }
    done
    # Every file of the .deb is in the .rpm (zsh completions go where each distribution looks).
    for f in $(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}'); do
        [[ "$f" == /usr/share/zsh/vendor-completions/_dockerd ]] && continue
        [[ "$f" == /usr/share/doc/dockerd/copyright ]] && continue
        grep -qxF "$f" <<<"$files" || {
            log "$f is in the .deb but not in the .rpm"
            ok=1
        }
    done
    scripts=$(rpm -qp --scripts "$rpm_file" 2>&1)
    for f in "systemd-sysusers dockerd.conf" "systemctl preset dockerd.socket" \
        "systemctl daemon-reload" "disable dockerd.socket dockerd.service"; do
        grep -qF "$f" <<<"$scripts" || {
            log "the .rpm's scriptlets do not run '$f'"
            ok=1
        }
    done
    local conflicts
    conflicts=$(rpm -qp --conflicts "$rpm_file" 2>&1)
    for f in docker-ce moby-engine; do
        grep -qx "$f" <<<"$conflicts" || {
            log "the .rpm does not conflict with $f (conflicts: $conflicts)"
            ok=1
        }
    done
    cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/dockerd.service) \
        "$repo/systemd/dockerd.service" || {
        log "the .deb's dockerd.service differs from systemd/dockerd.service"
        ok=1
    }
    return $ok
}

# ---- main ------------------------------------------------------------------------

trap finish EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || die "run as root: it installs packages and boots a container"
deb=${1:-$(ls -t "$repo"/dist/dockerd_*.deb 2>/dev/null | head -n 1)}
rpm_file=${2:-$(ls -t "$repo"/dist/dockerd-*.rpm 2>/dev/null | head -n 1)}
[[ -f "$deb" ]] || die "no .deb: build the packages first with packaging/build.sh"
[[ -f "$rpm_file" ]] || die "no .rpm: build the packages first with packaging/build.sh"
docker_cli=${DOCKER_CLI:-$(command -v docker || true)}
[[ -x "$docker_cli" ]] ||
    die "no docker CLI to copy into the guest: put the static docker client on PATH or set DOCKER_CLI"
install_host_tools || die "cannot install debootstrap, systemd-container, rpm and jq with apt-get"
deb=$(realpath "$deb")
rpm_file=$(realpath "$rpm_file")
version=$(dpkg-deb -f "$deb" Version)
version=${version%-*}
echo "==> testing $deb ($version) and $rpm_file"

root_cache=$(cached_root) || die "debootstrap of $SUITE failed"
work=$(mktemp -d /var/tmp/dockerd-e2e.XXXXXX) || die "mktemp"
echo "==> copying the root to $work/root"
cp -a --reflink=auto "$root_cache" "$work/root" || die "copying $root_cache"
install -m 0644 "$deb" "$work/root/root/dockerd.deb" || die "copying the .deb into the guest"
install -m 0755 "$docker_cli" "$work/root/usr/local/bin/docker" || die "copying the docker CLI"
fixture=$repo/../shared/fixtures/images/busybox-docker20.tar
[[ -f "$fixture" ]] || fixture=/work/shared/fixtures/images/busybox-docker20.tar
install -m 0644 "$fixture" "$work/root/root/busybox.tar" || die "copying the busybox image ($fixture)"
echo "==> booting the guest"
boot_guest "$work/root" || die "the guest did not boot (console: $work/console.log)"
echo "==> guest systemd is PID $guest_pid on the host"

step "package installs with dpkg -i" step_install
step "dockerd.socket listens, dockerd.service inactive, /run/docker.sock srw-rw---- root:docker" step_socket_listens
step "the first request activates dockerd.service (READY, STATUS, MainPID)" step_activation
step "docker load; containers run attached and detached, and keep running across systemctl restart dockerd" step_containers
step "journal holds native records (_TRANSPORT=journal, SYSLOG_IDENTIFIER, PRIORITY, fields)" step_journal
step "journald log driver: Docker's fields in the journal (journalctl CONTAINER_NAME=jlog), docker logs and docker logs -f" step_container_journal
step "systemctl reload applies daemon.json (debug records appear)" step_reload
step "a broken daemon.json on reload keeps the configuration and logs the error" step_reload_broken
step "the watchdog restarts a hung daemon; the socket holds requests meanwhile" step_watchdog
step "only group docker may use the socket" step_permissions
step "systemctl stop dockerd.socket dockerd stops cleanly" step_stop
step "the container keeps logging to the journal while the daemon is stopped" step_journal_while_stopped
step "systemctl start dockerd.socket brings activation back" step_reactivation
step "docker logs reads back from the journal what was logged while the daemon was stopped" step_journal_read_back
step "an idle daemon exits (idle-timeout: STOPPING=1, status 0) and the next request starts it again" step_idle_exit
step "dpkg -i over the installed package restarts the running daemon (upgrade path)" step_upgrade
step "the container outlived the watchdog, stop and start, the idle exit and the upgrade; docker rm -f ends it" step_containers_survive
step "dpkg -r stops and removes it; dpkg -P drops the enablement" step_remove_purge
step "the .rpm carries the same files and scriptlets" step_rpm
finish
