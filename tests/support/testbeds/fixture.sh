#!/bin/bash
# fixture.sh start|stop <bed> <mark file>: the setup and cleanup around tests that need the test
# bed <bed> (slurm, sge), for CTest fixtures.
#
#   start  notes the time in <mark file>, then runs <bed>.sh
#   stop   runs <bed>-stop.sh (which stops only what <bed>.sh started for $CPAR_TESTBED_OWNER),
#          then removes the job output files that Grid Engine wrote into $HOME since the start
#          (ipengine.[eo]<job>.<task>, ipcontroller.[eo]<job>.<task>: ipyparallel's default
#          scripts name no output file)
set -u
here=$(cd "$(dirname "$0")" && pwd)
what=$1 bed=$2 mark=$3
case "$what" in
    start)
        touch "$mark"
        exec bash "$here/$bed.sh"
        ;;
    stop)
        bash "$here/$bed-stop.sh"
        rc=$?
        if [ -f "$mark" ] && [ -n "${HOME:-}" ]; then
            find "$HOME" -maxdepth 1 -newer "$mark" \
                \( -name 'ipengine.[eo][0-9]*' -o -name 'ipcontroller.[eo][0-9]*' \) -delete
        fi
        rm -f "$mark"
        exit $rc
        ;;
    *)
        echo "usage: $0 start|stop <bed> <mark file>" >&2
        exit 2
        ;;
esac
