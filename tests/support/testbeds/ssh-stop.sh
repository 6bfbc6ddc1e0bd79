#!/bin/bash
# Stop the private sshd started by ssh.sh (listener only, by pid file). Pass --purge to delete keys.
set -u
D=${CPAR_SSHD_DIR:-/var/lib/cparallel-sshd}
if [ -f "$D/sshd.pid" ]; then
    pid=$(cat "$D/sshd.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for i in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        echo "stopped sshd ($pid)"
    fi
    rm -f "$D/sshd.pid"
fi
[ "${1:-}" = --purge ] && rm -rf "$D"
exit 0
