#!/usr/bin/env bash
# Install Driftscope into .venv and run `driftscope demo` (embedded SQLite store, dashboard on
# http://127.0.0.1:8050). Extra arguments go to `driftscope demo`, e.g. ./scripts/demo.sh --port 8060
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python >= 3.11 is needed, found $(python3 --version 2>&1)" >&2
    exit 1
fi
# Debian's python3 can only make a venv with python3-venv installed.
if ! python3 -c 'import ensurepip' 2>/dev/null; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=".venv/.driftscope-app-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ] && [ ! -e ".venv/.driftscope-deps-$(sha256sum pyproject.toml | cut -c1-16)" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e .
    touch "$stamp"
fi
exec .venv/bin/driftscope demo "$@"
