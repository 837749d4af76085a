#!/usr/bin/env bash
# Installs every Debian 12 package Sluice needs to build, run and test.
# Safe to run again; does nothing when all are present.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libfabric-dev libfabric-bin liburing-dev librocksdb-dev
  libprotobuf-dev protobuf-compiler libflatbuffers-dev flatbuffers-compiler
  libfuse3-dev fuse3 libgtest-dev libgmock-dev libtomlplusplus-dev
  pybind11-dev python3-dev python3-numpy python3-torch
  fio libopenmpi-dev openmpi-bin iproute2 git procps psmisc
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "sluice: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
