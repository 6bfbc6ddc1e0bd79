#!/bin/bash
# Stop the daemons that slurm.sh itself started (listed in
# $CPAR_TESTBED_STATE/slurm.<owner>.started, owner $CPAR_TESTBED_OWNER or "default"), each only
# while its pid file still names the pid recorded then. A bed somebody else started is left
# running.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/stop-lib.sh"
testbed_list slurm

# The jobs die with the daemons; slurmctld's saved state is ours to forget only when we started it.
if ours /run/slurm/slurmctld.pid; then
    timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true
fi
for f in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
    rec=$(recorded "$f")
    [ -n "$rec" ] || continue
    if [ -f "$f" ] && [ "$(cat "$f")" = "$rec" ]; then
        stop_pid "$rec" "$(basename "$f" .pid)" 50
        [ "$f" = /run/munge/munged.pid ] || rm -f "$f"
    fi
done
if ours /run/slurm/slurmctld.pid; then
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
fi
rm -f "$list"
exit 0
