#!/usr/bin/env bash
# The main job: install what is missing, build, start cpcontroller with real ipyparallel engines,
# run a real computation through the Python client, print its result, stop everything.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
engines=${ENGINES:-2}

"$top/scripts/deps.sh"
"$top/scripts/build.sh"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

profile="$work/profile_demo"
"$top/build/bin/cpcontroller" --profile-dir "$profile" --ping=500 --log-level=WARNING \
  2>"$work/controller.log" &
pids+=($!)
for _ in $(seq 100); do
  [ -f "$profile/security/ipcontroller-engine.json" ] && break
  sleep 0.1
done
[ -f "$profile/security/ipcontroller-engine.json" ] || { cat "$work/controller.log"; exit 1; }
echo "cpcontroller is up (pid ${pids[0]})"
for i in $(seq "$engines"); do
  /usr/bin/python3 -m ipyparallel.engine --profile-dir "$profile" --log-level=WARN \
    2>"$work/engine$i.log" &
  pids+=($!)
done
/usr/bin/python3 "$top/scripts/demo.py" "$profile" "$engines"
wait "${pids[0]}" && echo "cpcontroller exited cleanly"
