#!/usr/bin/env bash
# End-to-end test of containers, execs and health checks on a cgroup-v2-only host.
#
#   tests/e2e/cgroup-v2.sh [DOCKERD]     # default: target/release/dockerd, else target/debug/dockerd
#
# This machine's cgroups are hybrid (v1 controllers); every current distribution runs
# cgroup v2 alone. This script boots Debian 12 under qemu with systemd as PID 1 and
# cgroup v2 with its controllers (../shared/tools/v2vm.sh), starts the given daemon
# binary there as a transient systemd service with a delegated cgroup, and checks
# with the real docker CLI, step by step: a container gets its own cgroup, an exec
# joins it (and shows in `docker top`), exec options and exit codes, a health check
# going starting → healthy → unhealthy, volumes (data kept between containers, a
# tmpfs volume's size), an exec and its container outliving a daemon killed
# with SIGKILL, and resources: limits in the v2 files and updated live, OOM, a
# PIDs limit, docker stats, pause, devices through the eBPF device program, and
# the cgroup and namespace modes, docker build's limits, the systemd cgroup driver
# (Docker's default here: each container a transient docker-<id>.scope unit with its
# limits as properties), and the confinement a
# container runs under: the seccomp filter and AppArmor's docker-default profile
# (the guest's kernel has AppArmor on; its `apparmor` package is baked into the
# image for apparmor_parser). Each step prints PASS or FAIL; the last line is
# "N passed, M failed", and the exit status is non-zero when anything failed.
#
# Runs as root. Installs qemu-system-x86 and busybox-static when missing. The first
# run builds the guest image (about 2 minutes, cached by v2vm.sh); a run takes a few
# minutes more, since the guest is emulated (a docker CLI call takes seconds there).
# The guest has no iptables and no network, so the daemon runs with
# `--iptables=false --ip-masq=false --bridge none` and the containers with `--network none`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The shared tools live beside the repository (/work/shared for a clone elsewhere).
vm=${V2VM:-$repo/../shared/tools/v2vm.sh}
[ -x "$vm" ] || vm=/work/shared/tools/v2vm.sh
[ -x "$vm" ] || { echo "FAIL: setup: v2vm.sh is missing (../shared/tools beside the repository)"; exit 1; }

bin=${1:-}
if [ -z "$bin" ]; then
    for b in "$repo/target/release/dockerd" "$repo/target/debug/dockerd"; do
        if [ -x "$b" ]; then bin=$b; break; fi
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "FAIL: setup: no dockerd binary (cargo build first)"; exit 1; }
cli=${DOCKER_CLI:-$(command -v docker || true)}
[ -n "$cli" ] || { echo "FAIL: setup: no docker CLI on PATH (set DOCKER_CLI)"; exit 1; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

share=$(mktemp -d /tmp/dockerd-cgroup-v2.XXXXXX)
trap 'rm -rf "$share"' EXIT
cp "$bin" "$share/dockerd"
cp "$cli" "$share/docker"
mkdir -p "$share/rootfs/bin" "$share/rootfs/tmp"
cp /bin/busybox "$share/rootfs/bin/busybox"
for c in sh true sleep cat id test touch rm ls mknod grep mount mkdir; do ln -s busybox "$share/rootfs/bin/$c"; done
tar -C "$share/rootfs" -cf "$share/busybox.tar" .
rm -rf "$share/rootfs"

cat >"$share/guest.sh" <<'GUEST'
#!/bin/bash
# Runs in the guest as root, in /mnt/host.
set -u
passed=0
failed=0
export PATH=/mnt/host:$PATH
sock=/run/dk/docker.sock
export DOCKER_HOST=unix://$sock
export DOCKER_CONFIG=/run/dk/cli

step() {
    local name=$1
    shift
    echo "--- $name"
    if "$@"; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}

# wait_for SECONDS COMMAND...: true once COMMAND succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    "$@"
}

start_daemon() {
    systemd-run -q --unit "$1" -p Delegate=yes -p KillMode=process \
        /mnt/host/dockerd -H "unix://$sock" --data-root /var/lib/dk --exec-root /run/dk/exec \
        --pidfile /run/dk/docker.pid --iptables=false --ip-masq=false --bridge none
    wait_for 60 sh -c "systemctl is-failed -q $1 && exit 0; docker version" && ! systemctl is-failed -q "$1"
}

health() { docker inspect -f '{{.State.Health.Status}}' "$1"; }

setup() {
    mkdir -p /run/dk /var/lib/dk
    grep -q cgroup2 /proc/mounts && [ ! -d /sys/fs/cgroup/memory ] || { echo "not a cgroup-v2-only host"; return 1; }
    if ! start_daemon dk1; then
        journalctl -q -u dk1 --no-pager | tail -n 20
        return 1
    fi
    docker import /mnt/host/busybox.tar bb:1 >/dev/null &&
        docker run -d --name c1 --network none bb:1 sleep 100000 >/dev/null
}

container_cgroup() {
    local pid cg
    pid=$(docker inspect -f '{{.State.Pid}}' c1)
    cg=$(cut -d: -f3- "/proc/$pid/cgroup")
    echo "    container process in $cg"
    [ -n "$cg" ] && [ "$cg" != / ] && grep -qx "$pid" "/sys/fs/cgroup$cg/cgroup.procs" &&
        [ -n "$(cat "/sys/fs/cgroup$cg/cgroup.controllers")" ]
}

exec_joins_the_cgroup() {
    local pid cg
    pid=$(docker inspect -f '{{.State.Pid}}' c1)
    cg=$(cut -d: -f3- "/proc/$pid/cgroup")
    docker exec -d c1 sleep 777 || return 1
    wait_for 20 sh -c "docker top c1 | grep -q 'sleep 777'" || return 1
    local epid
    epid=$(pgrep -f 'sleep 777') || return 1
    echo "    exec process $epid in $(cut -d: -f3- "/proc/$epid/cgroup")"
    [ "$(cut -d: -f3- "/proc/$epid/cgroup")" = "$cg" ] &&
        [ "$(docker exec c1 cat /proc/self/cgroup)" = "$(docker exec c1 cat /proc/1/cgroup)" ] &&
        kill "$epid"
}

exec_options_and_codes() {
    [ "$(docker exec -u 1000:1000 -w /tmp -e X=1 c1 sh -c 'echo $(id -u) $(pwd) $X')" = "1000 /tmp 1" ] || return 1
    docker exec c1 sh -c 'exit 3'
    [ $? = 3 ] || return 1
    local out
    out=$(docker exec c1 no-such-command 2>&1)
    local rc=$?
    echo "    $out (exit $rc)"
    [ $rc = 126 ] && [[ $out == *'executable file not found in $PATH'* ]] || return 1
    [ "$(echo piped | docker exec -i c1 cat)" = piped ]
}

health_goes_healthy_then_unhealthy() {
    docker run -d --name h1 --network none --health-cmd 'test -e /tmp/ok' --health-interval 1s \
        --health-retries 2 bb:1 sh -c 'touch /tmp/ok; sleep 100000' >/dev/null || return 1
    wait_for 60 sh -c '[ "$(docker inspect -f "{{.State.Health.Status}}" h1)" = healthy ]' || return 1
    docker ps --filter health=healthy --format '{{.Names}} {{.Status}}' | grep -q '^h1 .*(healthy)' || return 1
    docker exec h1 rm /tmp/ok || return 1
    wait_for 60 sh -c '[ "$(docker inspect -f "{{.State.Health.Status}}" h1)" = unhealthy ]' || return 1
    echo "    $(docker inspect -f '{{.State.Health.FailingStreak}} failures, last: {{(index .State.Health.Log 4).ExitCode}}' h1)"
    [ "$(health h1)" = unhealthy ] && docker rm -f h1 >/dev/null
}

volumes_on_a_systemd_host() {
    docker volume create -o type=tmpfs -o device=tmpfs -o o=size=1m tv >/dev/null || return 1
    docker run --rm --network none -v data1:/d bb:1 sh -c 'echo kept > /d/f' || return 1
    [ "$(docker run --rm --network none -v data1:/d:ro bb:1 cat /d/f)" = kept ] || return 1
    if docker run --rm --network none -v tv:/t bb:1 dd if=/dev/zero of=/t/f bs=1k count=2048 2>/dev/null; then
        echo "    2 MiB fit in a tmpfs volume of 1 MiB"
        return 1
    fi
    if grep -q /var/lib/dk/volumes/tv/_data /proc/self/mountinfo; then
        echo "    the tmpfs volume stayed mounted after its last user"
        return 1
    fi
    docker volume rm tv data1 >/dev/null
}

exec_outlives_a_killed_daemon() {
    docker exec -d c1 sh -c 'sleep 10; touch /tmp/done' || return 1
    systemctl kill -s KILL --kill-whom=main dk1 || return 1
    sleep 1
    rm -f "$sock"
    start_daemon dk2 || { echo "    the daemon did not come back"; return 1; }
    [ "$(docker inspect -f '{{.State.Running}}' c1)" = true ] || { echo "    c1 stopped"; return 1; }
    wait_for 60 docker exec c1 test -e /tmp/done || { echo "    the exec did not finish"; return 1; }
    # The exec's state goes once it ended: only the container's directory stays.
    local id
    id=$(docker inspect -f '{{.Id}}' c1)
    wait_for 30 sh -c "[ \"\$(ls /run/dk/exec/containers)\" = $id ]" ||
        { echo "    left: $(ls /run/dk/exec/containers)"; return 1; }
}

# The systemd cgroup driver, Docker's default where systemd runs on cgroup v2: each
# container is a transient docker-<id>.scope in system.slice, made over D-Bus, with
# its limits as unit properties, gone when the container stops.
systemd_scope() {
    local id unit pid got
    [ "$(docker info -f '{{.CgroupDriver}}')" = systemd ] || { echo "    driver: $(docker info -f '{{.CgroupDriver}}')"; return 1; }
    id=$(docker run -d --name s1 --network none -m 64m --cpus 0.5 --pids-limit 50 bb:1 sleep 100000) || return 1
    unit=docker-$id.scope
    pid=$(docker inspect -f '{{.State.Pid}}' s1)
    echo "    $(cat /proc/$pid/cgroup)"
    [ "$(cat /proc/$pid/cgroup)" = "0::/system.slice/$unit" ] || return 1
    systemctl status --no-pager "$unit" | sed 's/^/      /'
    got=$(for p in ActiveState Slice Delegate MemoryMax CPUQuotaPerSecUSec TasksMax Description; do
        systemctl show -p "$p" --value "$unit"; done | tr '\n' ' ')
    echo "    systemctl show: $got"
    [ "$got" = "active system.slice yes 67108864 500ms 50 libcontainer container $id " ] || return 1
    systemd-cgls --no-pager -u "$unit" | grep -q 'sleep 100000' || { echo "    systemd-cgls:"; systemd-cgls --no-pager -u "$unit"; return 1; }
    # The files say the same as the unit.
    [ "$(cat /sys/fs/cgroup/system.slice/$unit/memory.max) $(cat /sys/fs/cgroup/system.slice/$unit/pids.max)" = "67108864 50" ] || return 1
    docker update -m 128m --pids-limit 60 s1 >/dev/null || return 1
    got=$(for p in MemoryMax TasksMax; do systemctl show -p "$p" --value "$unit"; done | tr '\n' ' ')
    echo "    after docker update: $got"
    [ "$got" = "134217728 60 " ] || return 1
    # An exec joins the scope.
    [ "$(docker exec s1 cat /proc/self/cgroup)" = "0::/" ] || return 1
    docker stop -t 1 s1 >/dev/null || return 1
    wait_for 30 sh -c "! systemctl is-active -q $unit" || { echo "    $unit still active after docker stop"; return 1; }
    [ ! -e "/sys/fs/cgroup/system.slice/$unit" ] || { echo "    its cgroup is left"; return 1; }
    # Started again: a new scope of the same name.
    docker start s1 >/dev/null && systemctl is-active -q "$unit" || return 1
    docker rm -f s1 >/dev/null
    wait_for 30 sh -c "! systemctl is-active -q $unit"
}

# The v2 directory of a container's cgroup, from its process.
cg_dir() {
    local pid
    pid=$(docker inspect -f '{{.State.Pid}}' "$1")
    echo "/sys/fs/cgroup$(cut -d: -f3- "/proc/$pid/cgroup")"
}

limits_in_v2_files() {
    docker run -d --name l1 --network none -m 64m --memory-reservation 32m --cpus 1.5 \
        --cpu-shares 512 --pids-limit 100 bb:1 sleep 100000 >/dev/null || return 1
    local d
    d=$(cg_dir l1)
    local got
    got="$(cat "$d/memory.max") $(cat "$d/memory.low") $(cat "$d/cpu.max") $(cat "$d/cpu.weight") $(cat "$d/pids.max")"
    echo "    $d: $got"
    [ "$got" = "67108864 33554432 150000 100000 20 100" ] || return 1
    # Swap as much as memory, as Docker sets it, where swap is accounted.
    if [ -e "$d/memory.swap.max" ]; then
        [ "$(cat "$d/memory.swap.max")" = 67108864 ] || { echo "    swap.max $(cat "$d/memory.swap.max")"; return 1; }
    fi
    docker update -m 100m --memory-swap 300m --cpus 0.5 --pids-limit 50 l1 >/dev/null || return 1
    got="$(cat "$d/memory.max") $(cat "$d/cpu.max") $(cat "$d/pids.max")"
    echo "    after update: $got"
    [ "$got" = "104857600 50000 100000 50" ] || return 1
    # docker info tells what the host can limit.
    [ "$(docker info -f '{{.MemoryLimit}} {{.CPUCfsQuota}} {{.PidsLimit}} {{.CgroupVersion}}')" = "true true true 2" ]
}

oom_and_pids_on_v2() {
    local rc=0
    docker run --name o1 --network none -m 32m bb:1 sh -c 'x=a; while true; do x=$x$x; done' || rc=$?
    echo "    exit $rc, $(docker inspect -f 'OOMKilled={{.State.OOMKilled}}' o1)"
    [ "$rc" = 137 ] && [ "$(docker inspect -f '{{.State.OOMKilled}}' o1)" = true ] || return 1
    # systemd's scope ended failed (oom-kill); the daemon reset it.
    local unit
    unit=docker-$(docker inspect -f '{{.Id}}' o1).scope
    if systemctl is-failed -q "$unit"; then echo "    $unit left failed"; return 1; fi
    docker rm o1 >/dev/null
    if docker exec l1 sh -c 'while true; do sleep 1000 & done' 2>/dev/null; then
        echo "    the fork bomb was not stopped"; return 1
    fi
    local n
    n=$(cat "$(cg_dir l1)/pids.current")
    echo "    $n processes under a limit of 50"
    [ "$n" -le 50 ]
}

stats_on_v2() {
    docker run -d --name s1 --network none -m 300m bb:1 sh -c 'while true; do :; done' >/dev/null || return 1
    local row
    row=$(docker stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}' s1)
    echo "    $row"
    docker rm -f s1 >/dev/null
    # A busy loop is most of a CPU; the limit is the one set; one process.
    echo "$row" | awk '{ cpu = $2 + 0; exit !(cpu > 30 && $5 == "300MiB" && $6 == 1) }'
}

pause_on_v2() {
    docker run -d --name p1 --network none bb:1 sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done' >/dev/null || return 1
    sleep 2
    docker pause p1 >/dev/null || return 1
    local d a b
    d=$(cg_dir p1)
    grep -q 'frozen 1' "$d/cgroup.events" || { echo "    not frozen"; return 1; }
    a=$(cat "/proc/$(docker inspect -f '{{.State.Pid}}' p1)/root/tmp/n")
    sleep 2
    b=$(cat "/proc/$(docker inspect -f '{{.State.Pid}}' p1)/root/tmp/n")
    echo "    counter $a then $b while paused; $(docker inspect -f '{{.State.Status}}' p1)"
    [ "$a" = "$b" ] && [ "$(docker inspect -f '{{.State.Status}}' p1)" = paused ] || return 1
    docker unpause p1 >/dev/null || return 1
    wait_for 30 sh -c "[ \"\$(cat /proc/$(docker inspect -f '{{.State.Pid}}' p1)/root/tmp/n)\" != $b ]" || return 1
    docker rm -f p1 >/dev/null
}

# The device cgroup on v2 is an eBPF program: Docker's default rules plus those of
# --device and --device-cgroup-rule. Node 240 has no driver: opening it gives ENXIO
# where the program allows it, EPERM where it does not.
devices_on_v2() {
    [ -c /run/dk/node ] || mknod /run/dk/node c 240 7 || return 1
    local o
    o=$(docker run --rm --network none bb:1 sh -c 'mknod /dev/own c 240 9 && cat /dev/own' 2>&1)
    echo "    no rule: $o"
    echo "$o" | grep -q "Operation not permitted" || return 1
    o=$(docker run --rm --network none --device-cgroup-rule 'c 240:* rw' bb:1 sh -c 'mknod /dev/own c 240 9 && cat /dev/own' 2>&1)
    echo "    with a rule: $o"
    echo "$o" | grep -q "No such device or address" || return 1
    o=$(docker run --rm --network none --device /run/dk/node:/dev/mine:r bb:1 sh -c 'cat /dev/mine; echo x > /dev/mine' 2>&1)
    echo "    --device with r only: $o"
    echo "$o" | grep -q "No such device or address" && echo "$o" | grep -q "Operation not permitted"
}

# --cgroupns host, --cgroup-parent, --group-add, and joining another container's PID
# and IPC namespaces.
namespaces_on_v2() {
    local o
    o=$(docker run --rm --network none bb:1 cat /proc/self/cgroup)
    echo "    private: $o"
    [ "$o" = "0::/" ] || return 1
    # The systemd driver takes a slice as the parent: ci-parent.slice is
    # /ci.slice/ci-parent.slice.
    o=$(docker run --rm --network none --cgroupns host --cgroup-parent ci-parent.slice --group-add 1234 bb:1 \
        sh -c 'cat /proc/self/cgroup; id -G')
    echo "    host, under ci-parent.slice, group 1234: $(echo $o)"
    echo "$o" | grep -q '^0::/ci.slice/ci-parent.slice/docker-.*\.scope$' && echo "$o" | grep -qw 1234 || return 1
    o=$(docker run --rm --network none --cgroup-parent /ci-parent bb:1 true 2>&1) && return 1
    echo "    --cgroup-parent /ci-parent: $o"
    echo "$o" | grep -q 'cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"' || return 1
    docker run -d --name donor --network none --ipc shareable bb:1 sleep 100000 >/dev/null &&
        docker exec donor touch /dev/shm/mark || return 1
    o=$(docker run --rm --network none --pid container:donor --ipc container:donor bb:1 \
        sh -c 'grep -q sleep /proc/1/cmdline && echo pid-shared; test -e /dev/shm/mark && echo ipc-shared')
    echo "    joined: $(echo $o)"
    docker rm -f donor >/dev/null
    [ "$(echo $o)" = "pid-shared ipc-shared" ]
}

build_on_v2() {
    # docker build's resource options reach its RUN containers' cgroups.
    local ctx=/tmp/build-ctx got
    mkdir -p "$ctx"
    printf 'FROM bb:1\nRUN cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max > /limits\n' >"$ctx/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q --network none -m 64m --cpu-period 100000 --cpu-quota 50000 \
        -t built:1 "$ctx" >/dev/null || return 1
    got=$(docker run --rm --network none built:1 cat /limits)
    echo "    limits a RUN step saw: $(echo $got)"
    [ "$(echo $got)" = "67108864 50000 100000" ]
}

# The container's command runs under seccomp's filter and AppArmor's docker-default
# profile (loaded by the daemon with apparmor_parser), and so does an exec; a mount
# the capabilities and the filter would allow is denied by the profile alone.
confinement() {
    local info label
    info=$(docker info --format '{{json .SecurityOptions}}')
    echo "    security options: $info"
    case $info in *'"name=apparmor"'*'"name=seccomp,profile=builtin"'*) ;; *) return 1 ;; esac
    grep -q '^docker-default ' /sys/kernel/security/apparmor/profiles || return 1
    [ "$(docker inspect -f '{{.AppArmorProfile}}' c1)" = docker-default ] || return 1
    label=$(docker exec c1 cat /proc/1/attr/current)
    echo "    the container's label: $label; an exec's: $(docker exec c1 cat /proc/self/attr/current)"
    [ "$label" = "docker-default (enforce)" ] || return 1
    [ "$(docker exec c1 cat /proc/self/attr/current)" = "docker-default (enforce)" ] || return 1
    [ "$(docker exec c1 grep '^Seccomp:' /proc/self/status | tr -d '\t ')" = "Seccomp:2" ] || return 1
    local priv=(--cap-add SYS_ADMIN --security-opt seccomp=unconfined)
    if docker run --rm --network none "${priv[@]}" bb:1 sh -c 'mkdir -p /m && mount -t tmpfs none /m' 2>/dev/null; then
        echo "    a mount under docker-default succeeded"
        return 1
    fi
    docker run --rm --network none "${priv[@]}" --security-opt apparmor=unconfined bb:1 \
        sh -c 'mkdir -p /m && mount -t tmpfs none /m' || return 1
    # Privileged, /proc/sysrq-trigger is writable; docker-default still denies it
    # ("h" only prints the help to the kernel log where a write gets through).
    if docker run --rm --network none --privileged --security-opt apparmor=docker-default bb:1 \
        sh -c 'echo h > /proc/sysrq-trigger' 2>/dev/null; then
        echo "    a write to /proc/sysrq-trigger got through docker-default"
        return 1
    fi
    docker run --rm --network none --privileged bb:1 sh -c 'echo h > /proc/sysrq-trigger' || return 1
    [ "$(docker run --rm --network none --privileged bb:1 cat /proc/self/attr/current)" = unconfined ]
}

step "setup: daemon in a delegated cgroup, busybox image, a container" setup
if [ "$failed" != 0 ]; then
    echo "$passed passed, $failed failed"
    exit 1
fi
step "the container has a cgroup of its own, with controllers" container_cgroup
step "systemd cgroup driver: docker-<id>.scope in system.slice, limits as unit properties, gone at stop" systemd_scope
step "an exec joins the container's cgroup and shows in docker top" exec_joins_the_cgroup
step "exec options, exit codes and stdin" exec_options_and_codes
step "a health check goes healthy, then unhealthy" health_goes_healthy_then_unhealthy
step "volumes: data kept between containers, a tmpfs volume's size enforced" volumes_on_a_systemd_host
step "an exec and its container outlive a daemon killed with SIGKILL" exec_outlives_a_killed_daemon
step "limits in the v2 files (memory, swap, cpu.max, cpu.weight, pids), updated live" limits_in_v2_files
step "a memory hog is OOM-killed; a fork bomb stops at the PIDs limit" oom_and_pids_on_v2
step "docker stats: CPU %, memory limit and PIDs from the v2 files" stats_on_v2
step "pause freezes with cgroup.freeze, unpause thaws" pause_on_v2
step "devices: --device and --device-cgroup-rule through the eBPF device program" devices_on_v2
step "--cgroupns host, --cgroup-parent, --group-add, shared PID and IPC namespaces" namespaces_on_v2
step "docker build: --memory and --cpu-quota in the RUN steps' v2 files" build_on_v2
step "seccomp and AppArmor: docker-default denies mount and /proc/sysrq-trigger" confinement

docker rm -f c1 h1 l1 >/dev/null 2>&1
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
GUEST
chmod +x "$share/guest.sh"

rc=0
V2VM_EXTRA_PKGS=apparmor V2VM_QUIET=1 V2VM_TIMEOUT=${V2VM_TIMEOUT:-1800} "$vm" "$share" guest.sh >"$share/vm.log" 2>&1 || rc=$?
cat "$share/out.log" 2>/dev/null || cat "$share/vm.log"
if [ "$rc" != 0 ] && [ -f "$share/console.log" ]; then
    echo "--- guest console (last lines)"
    tail -n 40 "$share/console.log"
fi
exit "$rc"
