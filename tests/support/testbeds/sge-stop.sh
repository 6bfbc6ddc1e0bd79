#!/bin/bash
# Stop the daemons that sge.sh itself started (listed in $CPAR_TESTBED_STATE/sge.<owner>.started,
# owner $CPAR_TESTBED_OWNER or "default"), each only while its pid file still names the pid
# recorded then. sge_qmaster takes about 10 s to exit.
set -u
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
here=$(cd "$(dirname "$0")" && pwd)
. "$here/stop-lib.sh"
testbed_list sge
QPID=/var/spool/gridengine/qmaster/qmaster.pid
if ours $QPID; then
    timeout 10 qdel -u "$(id -un)" '*' >/dev/null 2>&1 || true
fi
# execd first, then the qmaster
for f in $(grep -v "^$QPID " "$list" | cut -d' ' -f1) $QPID; do
    rec=$(recorded "$f")
    [ -n "$rec" ] || continue
    if [ -f "$f" ] && [ "$(cat "$f")" = "$rec" ]; then
        stop_pid "$rec" "$(cat "/proc/$rec/comm" 2>/dev/null || echo "$rec")" 100
        rm -f "$f"
    elif [ ! -f "$f" ] && alive "$rec" && grep -q sge_ "/proc/$rec/comm" 2>/dev/null; then
        stop_pid "$rec" "$(cat "/proc/$rec/comm")" 100
    fi
done
rm -f "$list"
exit 0
