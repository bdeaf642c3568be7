#!/usr/bin/env bash
# Create the virtual environment .venv and install candleflow into it (editable), with the extras named by the
# first argument if any (`bash scripts/setup.sh test`).  Debian's python3 refuses a global `pip install`
# (PEP 668) and ships venv's pip bootstrap separately, as python3-venv: installed via apt if venv creation fails.
# Nothing is installed into the system's or your own Python.  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q -e ".${1:+[$1]}"
