# dockerd %postun ($1: 0 on removal, 1 or more on upgrade): forget removed
# units; on upgrade, move a running daemon to the new binary (containers keep
# running, the socket queues requests meanwhile).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$1" -ge 1 ]; then
        systemctl try-restart dockerd.service
    fi
fi
