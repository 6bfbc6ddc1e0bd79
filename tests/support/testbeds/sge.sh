#!/bin/bash
# A single-node Son of Grid Engine (Debian's gridengine-*: sge_qmaster, sge_execd, queue all.q)
# on loopback, for the launcher tests. Run as root; no systemd: the daemons are started directly.
#
#   bash sge.sh           install what is missing, configure, start, run a smoke job
#   SGE_SMOKE=0           skip the smoke job
#
# The client tools need SGE_ROOT=/var/lib/gridengine SGE_CELL=default (Debian's /usr/bin wrappers
# find them anyway). Idempotent; the daemons it started itself are recorded in
# $CPAR_TESTBED_STATE (default /run/cpar-testbeds) under $CPAR_TESTBED_OWNER (default "default")
# for sge-stop.sh run with the same owner, which stops only those.
#
# Three fixes over the packaged defaults: host_aliases (127.0.0.1 reverse-resolves to another name
# than the host's own, which the qmaster refuses), min_uid/min_gid 0 set before execd starts (root
# jobs), and a queue with no parallel environments and no load thresholds (a busy machine would
# put it into alarm).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
STATE=${CPAR_TESTBED_STATE:-/run/cpar-testbeds}
mkdir -p "$STATE"

if ! command -v sge_qmaster >/dev/null || ! command -v sge_execd >/dev/null ||
   ! command -v qsub >/dev/null || ! command -v qconf >/dev/null; then
    # debconf's default shared/gridengineconfig=true makes the postinst create the cell
    # "default" (admin user sgeadmin, Berkeley DB spooling).
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends gridengine-master gridengine-exec \
        gridengine-client >/dev/null
fi
[ -s "$SGE_ROOT/$SGE_CELL/common/bootstrap" ] ||
    { echo "sge: cell $SGE_CELL is not initialised (debconf gridengineconfig=false?)" >&2; exit 1; }

H=$(hostname)
getent hosts "$H" >/dev/null || { echo "sge: host name $H does not resolve" >&2; exit 1; }
REV=$(getent hosts 127.0.0.1 | awk '{print $2; exit}')
common=$SGE_ROOT/$SGE_CELL/common
want_alias="$H $REV"
[ "$(cat "$common/host_aliases" 2>/dev/null)" = "$want_alias" ] || echo "$want_alias" > "$common/host_aliases"
grep -qx "$H" "$common/act_qmaster" 2>/dev/null || grep -qx "$REV" "$common/act_qmaster" 2>/dev/null ||
    echo "$H" > "$common/act_qmaster"
chown sgeadmin:sgeadmin "$common/host_aliases" "$common/act_qmaster"
mkdir -p /var/run/gridengine /var/spool/gridengine/execd
chown sgeadmin:sgeadmin /var/run/gridengine /var/spool/gridengine/execd

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
started() { echo "$1 $(cat "$1")" >> "$STATE/sge.${CPAR_TESTBED_OWNER:-default}.started"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

QPID=/var/spool/gridengine/qmaster/qmaster.pid
qmaster_new=
if ! running $QPID; then
    /usr/sbin/sge_qmaster
    qmaster_new=1
fi
for i in $(seq 100); do qstat >/dev/null 2>&1 && break; sleep 0.2; done
qstat >/dev/null
# recorded once it answers: the daemon rewrites its pid file after it has detached
[ -z "$qmaster_new" ] || started $QPID

# Global configuration: root may run jobs; load reports every 5 s. qconf -mconf edits through
# $EDITOR and exits 1 with "configuration unchanged" when nothing changed.
cat > "$tmp/conf.sh" <<'ED'
#!/bin/sh
sed -i -e 's/^min_uid .*/min_uid                      0/' \
       -e 's/^min_gid .*/min_gid                      0/' \
       -e 's/^load_report_time .*/load_report_time             00:00:05/' "$1"
ED
chmod +x "$tmp/conf.sh"
EDITOR=$tmp/conf.sh qconf -mconf global >/dev/null 2>&1 || true
qconf -sconf global | grep -qE "^min_uid +0$"
# Scheduler: every second instead of every 15 s.
cat > "$tmp/sched.sh" <<'ED'
#!/bin/sh
sed -i -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
       -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
       -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' "$1"
ED
chmod +x "$tmp/sched.sh"
EDITOR=$tmp/sched.sh qconf -msconf >/dev/null 2>&1 || true
qconf -ss 2>/dev/null | grep -qx "$H" || qconf -as "$H" >/dev/null 2>&1
qconf -sh 2>/dev/null | grep -qx "$H" || qconf -ah "$H" >/dev/null 2>&1

# execd registers the exec host itself, since the host is an admin host.
epid() {
    local f
    for f in /var/spool/gridengine/execd/"$REV"/execd.pid /var/spool/gridengine/execd/"$H"/execd.pid; do
        [ -f "$f" ] && { echo "$f"; return; }
    done
    echo /var/spool/gridengine/execd/"$H"/execd.pid
}
execd_new=
if ! running "$(epid)"; then
    /usr/sbin/sge_execd
    execd_new=1
fi
for i in $(seq 100); do qconf -sel 2>/dev/null | grep -qx "$H" && running "$(epid)" && break; sleep 0.2; done
[ -z "$execd_new" ] || started "$(epid)"

NSLOTS=${SGE_SLOTS:-4}
if ! qconf -sq all.q >/dev/null 2>&1; then
    cat > "$tmp/queue.sh" <<ED
#!/bin/sh
sed -i -e 's/^hostlist .*/hostlist              $H/' -e 's/^slots .*/slots                 $NSLOTS/' \\
       -e 's|^shell .*|shell                 /bin/sh|' -e 's/^pe_list .*/pe_list               NONE/' \\
       -e 's/^load_thresholds .*/load_thresholds       NONE/' "\$1"
ED
    chmod +x "$tmp/queue.sh"
    EDITOR=$tmp/queue.sh qconf -aq all.q >/dev/null 2>&1
fi
qmod -cq all.q >/dev/null 2>&1 || true
ok=
for i in $(seq 100); do
    line=$(qstat -f | grep "all.q@" || true)
    if echo "$line" | grep -q "lx-" && ! echo "$line" | grep -qE ' [auEdsS]+$'; then ok=1; break; fi
    sleep 0.3
done
[ -n "$ok" ] || { echo "sge: queue all.q is not ready:"; qstat -f; exit 1; } >&2

if [ "${SGE_SMOKE:-1}" = 1 ]; then
    d=$tmp/smoke
    mkdir -p "$d"
    printf '#$ -S /bin/sh\n#$ -N smoke\n#$ -t 1-2\n#$ -o %s\n#$ -j y\necho task $SGE_TASK_ID ok\n' "$d" > "$d/job.sh"
    out=$(qsub "$d/job.sh")
    jid=$(echo "$out" | grep -oE '[0-9]+' | head -1)
    for i in $(seq 200); do qstat -j "$jid" >/dev/null 2>&1 || break; sleep 0.3; done
    n=$(cat "$d"/smoke.o* 2>/dev/null | grep -c ok || true)
    [ "$n" = 2 ] || { echo "sge: smoke job $jid: $n of 2 tasks reported" >&2; exit 1; }
fi
echo "sge up (export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL)"
