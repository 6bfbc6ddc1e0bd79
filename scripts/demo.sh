#!/usr/bin/env bash
# The main job: install what is missing, build, start a cluster with cpcluster (cpcontroller and
# real ipyparallel engines, the local launcher, embedded defaults), run a real computation through
# the Python client, print its result, and stop the cluster again.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
engines=${ENGINES:-2}

"$top/scripts/deps.sh"
"$top/scripts/build.sh"

work=$(mktemp -d)
profile="$work/profile_demo"
cpcluster="$top/build/bin/cpcluster"
cleanup() {
  "$cpcluster" stop --profile-dir "$profile" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$cpcluster" start -n "$engines" --profile-dir "$profile" --daemonize --log-level=WARNING \
  2>"$work/cluster.log" || { cat "$work/cluster.log"; exit 1; }
echo "cluster is up: cpcontroller and $engines engines (cpcluster list):"
"$cpcluster" list --profile-dir "$profile"
/usr/bin/python3 "$top/scripts/demo.py" "$profile" "$engines"
"$cpcluster" stop --profile-dir "$profile" 2>"$work/stop.log" || { cat "$work/stop.log"; exit 1; }
echo "cluster stopped"
