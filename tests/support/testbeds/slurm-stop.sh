#!/bin/bash
# Stop the daemons that slurm.sh itself started (listed in
# $CPAR_TESTBED_STATE/slurm.<owner>.started, owner $CPAR_TESTBED_OWNER or "default"), each only
# while its pid file still names the pid recorded then. A bed somebody else started is left
# running.
set -u
STATE=${CPAR_TESTBED_STATE:-/run/cpar-testbeds}
list=$STATE/slurm.${CPAR_TESTBED_OWNER:-default}.started
[ -f "$list" ] || { echo "slurm: nothing started by slurm.sh"; exit 0; }

# Alive and not a zombie: a daemon whose parent is a subreaper (a test runner) stays a zombie
# until that parent reaps it.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
stop_pid() {
    local pid=$1 name=$2
    alive "$pid" || return 0
    kill -TERM "$pid"
    for i in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid"
    echo "stopped $name ($pid)"
}
ours() { grep -q "^$1 " "$list"; }

# The jobs die with the daemons; slurmctld's saved state is ours to forget only when we started it.
if ours /run/slurm/slurmctld.pid; then
    timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true
fi
for f in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
    rec=$(grep "^$f " "$list" | tail -1 | cut -d' ' -f2)
    [ -n "$rec" ] || continue
    if [ -f "$f" ] && [ "$(cat "$f")" = "$rec" ]; then
        stop_pid "$rec" "$(basename "$f" .pid)"
        [ "$f" = /run/munge/munged.pid ] || rm -f "$f"
    fi
done
if ours /run/slurm/slurmctld.pid; then
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
fi
rm -f "$list"
exit 0
