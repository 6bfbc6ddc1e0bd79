# Sourced by <bed>-stop.sh (slurm, sge): what <bed>.sh started is listed in
# $CPAR_TESTBED_STATE/<bed>.<owner>.started (owner $CPAR_TESTBED_OWNER or "default"), one
# "<pid file> <pid>" line per daemon; these helpers stop each only while its pid file still names
# the pid recorded then.

# testbed_list <bed>: set $list to that file; when there is none, say so and exit 0.
testbed_list() {
    list=${CPAR_TESTBED_STATE:-/run/cpar-testbeds}/$1.${CPAR_TESTBED_OWNER:-default}.started
    [ -f "$list" ] || { echo "$1: nothing started by $1.sh"; exit 0; }
}

# Alive and not a zombie: a daemon whose parent is a subreaper (a test runner) stays a zombie
# until that parent reaps it.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_pid <pid> <name> <tries>: SIGTERM, then SIGKILL when still alive after <tries> x 0.2 s.
stop_pid() {
    local pid=$1 name=$2 tries=$3
    alive "$pid" || return 0
    kill -TERM "$pid"
    for i in $(seq "$tries"); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid"
    echo "stopped $name ($pid)"
}

# ours <pid file>: whether the list names it. recorded <pid file>: the pid recorded for it.
ours() { grep -q "^$1 " "$list"; }
recorded() { grep "^$1 " "$list" | tail -1 | cut -d' ' -f2; }
