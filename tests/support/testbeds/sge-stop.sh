#!/bin/bash
# Stop the daemons that sge.sh itself started (listed in $CPAR_TESTBED_STATE/sge.<owner>.started,
# owner $CPAR_TESTBED_OWNER or "default"), each only while its pid file still names the pid
# recorded then. sge_qmaster takes about 10 s to exit.
set -u
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
STATE=${CPAR_TESTBED_STATE:-/run/cpar-testbeds}
list=$STATE/sge.${CPAR_TESTBED_OWNER:-default}.started
[ -f "$list" ] || { echo "sge: nothing started by sge.sh"; exit 0; }

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
    for i in $(seq 100); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid"
    echo "stopped $name ($pid)"
}
QPID=/var/spool/gridengine/qmaster/qmaster.pid
if grep -q "^$QPID " "$list"; then
    timeout 10 qdel -u "$(id -un)" '*' >/dev/null 2>&1 || true
fi
# execd first, then the qmaster
for f in $(grep -v "^$QPID " "$list" | cut -d' ' -f1) $QPID; do
    rec=$(grep "^$f " "$list" | tail -1 | cut -d' ' -f2)
    [ -n "$rec" ] || continue
    if [ -f "$f" ] && [ "$(cat "$f")" = "$rec" ]; then
        stop_pid "$rec" "$(cat "/proc/$rec/comm" 2>/dev/null || echo "$rec")"
        rm -f "$f"
    elif [ ! -f "$f" ] && alive "$rec" && grep -q sge_ "/proc/$rec/comm" 2>/dev/null; then
        stop_pid "$rec" "$(cat "/proc/$rec/comm")"
    fi
done
rm -f "$list"
exit 0
