# dockerd %post ($1: 1 on installation, 2 or more on upgrade): create group
# "docker", load the units, and on first installation enable (not start)
# dockerd.socket as the system's presets say.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers dockerd.conf
elif ! getent group docker >/dev/null; then
    groupadd --system docker
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl preset dockerd.socket
fi
