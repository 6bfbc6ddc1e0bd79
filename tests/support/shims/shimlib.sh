# shimlib.sh - shared part of the batch-system command shims (sourced, POSIX sh).
#
# The shims in the directories beside this file stand in for PBS/Torque, LSF, HTCondor and
# Windows HPC commands in tests: they print what those systems print, keep their jobs in a state
# directory, and really run what was submitted, in the background, on this machine.
#
# Environment:
#   CPAR_SHIM_STATE_DIR  where jobs are kept (default: ${TMPDIR:-/tmp}/cpar-shims-<uid>)
#   CPAR_SHIM_FAIL       when set, the submit command prints it on stderr and exits 1
#
# A job is the directory $CPAR_SHIM_STATE_DIR/<id>/ holding: tasks (how many), name, queue,
# task.<i>.pid (the task's process group), task.<i>.exit (its exit status once it ended),
# task.<i>.out (what it printed), removed (deleted by the user).

shim_state_dir() {
    d=${CPAR_SHIM_STATE_DIR:-${TMPDIR:-/tmp}/cpar-shims-$(id -u)}
    mkdir -p "$d" || exit 2
    printf '%s\n' "$d"
}

# A new job id (a counter under a mkdir lock); creates the job's directory.
shim_new_job() {
    sd=$(shim_state_dir)
    while ! mkdir "$sd/.lock" 2>/dev/null; do sleep 0.05; done
    n=$(cat "$sd/.counter" 2>/dev/null || echo 100)
    n=$((n + 1))
    echo "$n" >"$sd/.counter"
    rmdir "$sd/.lock"
    mkdir -p "$sd/$n"
    printf '%s\n' "$n"
}

# shim_job_dir <id>: the job's directory, or exit status 1 when there is no such job.
shim_job_dir() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    jd=$(shim_state_dir)/$1
    [ -d "$jd" ] || return 1
    printf '%s\n' "$jd"
}

# shim_start_task <jobdir> <i> <cwd> <NAME=value> cmd args...: run task <i> in the background in
# its own session (so that delete and signal can address its process group), with NAME=value
# (the system's array index variable) in its environment.
shim_start_task() {
    jd=$1 i=$2 cwd=$3 envset=$4
    shift 4
    [ -d "$cwd" ] || cwd=$jd
    (
        cd "$cwd" || exit 1
        export "$envset"
        exec setsid sh -c 'echo $$ >"$0.pid"; "$@" >>"$0.out" 2>&1 </dev/null
            echo $? >"$0.exit.tmp"; mv "$0.exit.tmp" "$0.exit"' "$jd/task.$i" "$@"
    ) >/dev/null 2>&1 &
}

# shim_zombie <pid>: whether it ended and waits to be reaped.
shim_zombie() {
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)
    [ "$st" = Z ]
}

# shim_task_state <jobdir> <i>: prints "running", "exited <code>" or "removed".
shim_task_state() {
    if [ -f "$1/task.$2.exit" ]; then
        if [ -f "$1/removed" ]; then echo removed; else echo "exited $(cat "$1/task.$2.exit")"; fi
        return
    fi
    pid=$(cat "$1/task.$2.pid" 2>/dev/null)
    if [ -z "$pid" ] || { kill -0 "$pid" 2>/dev/null && ! shim_zombie "$pid"; }; then
        echo running # (or still starting)
    elif [ -f "$1/removed" ]; then
        echo removed
    else
        echo "exited 1"
    fi
}

# shim_signal_job <jobdir> <signal>: signal every task's process group.
shim_signal_job() {
    t=$(cat "$1/tasks")
    i=1
    while [ "$i" -le "$t" ]; do
        pid=$(cat "$1/task.$i.pid" 2>/dev/null)
        [ -n "$pid" ] && kill -s "$2" -- "-$pid" 2>/dev/null
        i=$((i + 1))
    done
    return 0
}

# shim_remove_job <jobdir>: mark removed, then TERM every task (and KILL what is left).
shim_remove_job() {
    : >"$1/removed"
    shim_signal_job "$1" TERM
    (
        sleep 2
        shim_signal_job "$1" KILL
    ) >/dev/null 2>&1 &
}

# shim_fail_if_asked <program>: the injected submit failure.
shim_fail_if_asked() {
    if [ -n "${CPAR_SHIM_FAIL:-}" ]; then
        printf '%s\n' "$CPAR_SHIM_FAIL" >&2
        exit 1
    fi
}
