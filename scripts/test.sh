#!/usr/bin/env bash
# Every test: install what is missing, build with warnings as errors, run the unit, plugin and
# compat suites, then run the unit and plugin suites again under AddressSanitizer and
# UndefinedBehaviorSanitizer.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

CPAR_DEPS_EXTRA="valgrind" "$top/scripts/deps.sh"

BUILD_TYPE=Debug BUILD_DIR="$top/build" "$top/scripts/build.sh" -DCPAR_WERROR=ON
BUILD_TYPE=Debug BUILD_DIR="$top/build-asan" "$top/scripts/build.sh" -DCPAR_WERROR=ON \
  -DCPAR_SANITIZE=ON

status=0
echo "== unit and plugin tests"
(cd "$top/build" && ctest -j"$(nproc)" -LE compat --output-on-failure) || status=1
echo "== compat tests (real ipyparallel client and engines)"
(cd "$top/build" && ctest -L compat --output-on-failure) || status=1
echo "== unit and plugin tests under ASan/UBSan"
(cd "$top/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest -j"$(nproc)" -LE compat \
  --output-on-failure) || status=1
exit $status
