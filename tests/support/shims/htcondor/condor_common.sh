# condor_common.sh - condor_q and condor_history shims' shared reporting (sourced).

# condor_report queue|history <cluster> -af ATTR...
condor_report() {
    which=$1
    shift
    id= attrs=
    while [ $# -gt 0 ]; do
        case $1 in
        -af | -autoformat) shift; attrs="$*"; break ;;
        -*) ;;
        *) id=${1%%.*} ;;
        esac
        shift
    done
    jd=$(shim_job_dir "$id") || return 0 # an unknown cluster: nothing printed, exit 0
    t=$(cat "$jd/tasks")
    i=1
    while [ "$i" -le "$t" ]; do
        s=$(shim_task_state "$jd" "$i")
        status= code=undefined
        case $which:$s in
        queue:running) status=2 ;;
        history:removed) status=3 ;;
        history:exited*) status=4 code=${s#exited } ;;
        esac
        if [ -n "$status" ]; then
            line=
            for a in $attrs; do
                case $a in
                JobStatus) v=$status ;;
                ExitCode) v=$code ;;
                ProcId) v=$((i - 1)) ;;
                ClusterId) v=$id ;;
                *) v=undefined ;;
                esac
                line="${line:+$line }$v"
            done
            echo "$line"
        fi
        i=$((i + 1))
    done
}
