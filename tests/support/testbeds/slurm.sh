#!/bin/bash
# A single-node Slurm (munged, slurmctld, slurmd) on loopback, for the launcher tests. Run as root;
# no systemd: the daemons are started directly and tracked by their pid files.
#
#   bash slurm.sh         install what is missing, configure, start, run a smoke job
#   SLURM_SMOKE=0         skip the smoke job
#
# Idempotent: on a bed that already runs it only checks it. It records the daemons it started
# itself in $CPAR_TESTBED_STATE (default /run/cpar-testbeds), under the name $CPAR_TESTBED_OWNER
# (default "default"), so that slurm-stop.sh run with the same owner stops those and nothing else:
# a test suite that found the bed running leaves it running.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STATE=${CPAR_TESTBED_STATE:-/run/cpar-testbeds}
mkdir -p "$STATE"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
   ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge >/dev/null
fi

HOST=$(hostname -s)
NCPU=$(nproc)
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
started() { echo "$1 $(cat "$1")" >> "$STATE/slurm.${CPAR_TESTBED_OWNER:-default}.started"; }

# ---- munge -------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
munged_new=
if ! running /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged
    munged_new=1
fi
for i in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
[ -z "$munged_new" ] || started /run/munge/munged.pid
munge -n </dev/null | unmunge >/dev/null

# ---- slurm.conf (rewritten only when it differs) ------------------------------------------------
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
conf=$(mktemp)
cat > "$conf" <<CONF
# single-node slurm.conf for the cparallel launcher tests: no cgroups, no accounting, no systemd
ClusterName=cpartest
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=1000 State=UNKNOWN
# OverSubscribe lets a controller job and engine jobs share a small machine
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
cmp -s "$conf" /etc/slurm/slurm.conf || cp "$conf" /etc/slurm/slurm.conf
rm -f "$conf"

# ---- daemons -----------------------------------------------------------------------------------
new=
if ! running /run/slurm/slurmctld.pid; then
    /usr/sbin/slurmctld
    new="$new /run/slurm/slurmctld.pid"
fi
if ! running /run/slurm/slurmd.pid; then
    /usr/sbin/slurmd
    new="$new /run/slurm/slurmd.pid"
fi

st=
for i in $(seq 150); do
    st=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    case "$st" in idle*|mixed*|allocated*) break ;; esac
    sleep 0.2
done
# recorded once the node answers: the daemons write their pid files after they have detached
for f in $new; do running "$f" && started "$f"; done
case "$st" in
    idle*|mixed*|allocated*) ;;
    *) echo "slurm: node $HOST is '${st:-unknown}', not idle; see /var/log/slurm/" >&2; exit 1 ;;
esac

if [ "${SLURM_SMOKE:-1}" = 1 ]; then
    d=$(mktemp -d)
    cat > "$d/job.sbatch" <<JOB
#!/bin/sh
#SBATCH --job-name=smoke
#SBATCH --ntasks=2
#SBATCH --output=$d/out-%j.txt
srun sh -c 'echo task \$SLURM_PROCID ok'
JOB
    out=$(sbatch "$d/job.sbatch")
    jid=$(echo "$out" | grep -oE '[0-9]+' | head -1)
    for i in $(seq 150); do
        st=$(scontrol show job "$jid" 2>/dev/null | grep -oE 'JobState=[A-Z]+' | cut -d= -f2)
        [ "$st" = COMPLETED ] && break
        sleep 0.2
    done
    n=$(cat "$d"/out-*.txt 2>/dev/null | grep -c ok || true)
    rm -rf "$d"
    if [ "$st" != COMPLETED ] || [ "$n" != 2 ]; then
        echo "slurm: smoke job $jid ended as '$st' with $n of 2 tasks reporting" >&2
        exit 1
    fi
fi
echo "slurm up"
