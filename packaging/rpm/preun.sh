# dockerd %preun ($1: 0 on removal, 1 or more on upgrade): on removal, disable
# and stop the socket and the daemon. Containers keep running (KillMode=process).
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable dockerd.socket dockerd.service
    if [ -d /run/systemd/system ]; then
        systemctl stop dockerd.socket dockerd.service
    fi
fi
