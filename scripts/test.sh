#!/usr/bin/env bash
# Install what the test suite needs on Debian bookworm (Python >= 3.11), type-check, then run the whole suite.
#   ./scripts/test.sh [pytest args...]
# System packages come from apt, only those missing (root, or sudo otherwise); Python packages go into
# .venv. On a machine that has everything it installs nothing and goes straight to mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv: Debian's python3 has no ensurepip without it. The servers are started by the tests
# themselves on their own ports; the system services these packages ship are never used.
APT_PACKAGES=(python3-venv postgresql prometheus prometheus-alertmanager chromium chromium-driver)

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python >= 3.11 is needed, found $(python3 --version 2>&1)" >&2
    exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    echo "installing with apt: ${missing[*]}"
    # Keep the packages' services (postgresql, prometheus, alertmanager) from starting: the tests do not
    # use them, and without systemd their start can fail the install. Only if no policy is in place yet.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        trap '"${sudo[@]}" rm -f "$policy"' EXIT
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Explicitly, not only by the trap: the exec at the end would skip an EXIT trap.
    if [ "$(trap -p EXIT)" ]; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Reinstall only when the dependency list changed since the last successful install.
stamp=".venv/.driftscope-deps-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev]"
    rm -f .venv/.driftscope-deps-*
    touch "$stamp"
fi

# Type check first (pyproject.toml [tool.mypy]); its cache in .mypy_cache makes a re-run take seconds.
.venv/bin/mypy
exec .venv/bin/pytest "$@"
