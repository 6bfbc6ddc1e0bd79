#!/usr/bin/env bash
# Installs the Debian 12 packages cparallel builds and tests with, when any is missing.
# Needs root (or sudo) only when something has to be installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libzmq3-dev libltdl-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev libssl-dev
  libsqlite3-dev libmongoc-dev libcmocka-dev
  python3-ipyparallel python3-pytest python3-zmq python3-numpy
  python3-mockupdb python3-mongomock
)
[ "${CPAR_DEPS_EXTRA:-}" ] && read -r -a extra <<<"$CPAR_DEPS_EXTRA" && packages+=("${extra[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
