#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine:
# graphviz's `dot` (graph rendering tests), headless Chromium (report test),
# strace (kills a real run at every rename), and the package with its test extras
# in the virtual environment .venv (created here; Debian's python3 refuses a global
# `pip install`, PEP 668). Nothing is installed into the system's or your own Python.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
fi
bash scripts/setup.sh test  # .venv with the package and its test extras
