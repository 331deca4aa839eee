#!/usr/bin/env bash
# Install everything the test suite needs on Debian 12 and run all of it:
# lint, type checks and pytest, including the tier of booted Debian nodes.
#
#   sudo ./scripts/test.sh [pytest arguments...]
#   sudo ./scripts/test.sh --setup-only    # install only; the venv is .venv-test
#
# Needs root (the testbed boots systemd-nspawn nodes in network namespaces)
# and the Debian and PyPI package registries. The first run builds the node
# base with debootstrap (about a minute) and caches it under
# ${NC_CACHE:-/var/cache/nydus-console-testbed}.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: the tests boot Debian nodes with systemd-nspawn" >&2
    exit 1
fi

echo "== installing Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps libnss-mymachines (a systemd-container
# recommendation) from rewriting the host's nsswitch.conf.
apt-get install -y -qq --no-install-recommends \
    openssh-server openssh-client containerd debootstrap systemd-container \
    iproute2 zstd tmux procps util-linux sudo ca-certificates python3-venv \
    >/dev/null

echo "== installing Python packages"
python=${PYTHON:-python3}
venv=${NC_TEST_VENV:-$repo/.venv-test}
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$repo[test]"
if [ "${1:-}" = --setup-only ]; then
    echo "installed; the test venv is $venv"
    exit 0
fi

echo "== ruff"
"$venv/bin/ruff" check console screens tests benchmarks
echo "== mypy"
(cd /tmp && "$venv/bin/mypy" --strict --ignore-missing-imports -p nydus_console)

echo "== pytest"
# A testbed that cannot start is a failure here, not a skip.
export NC_TESTBED_REQUIRED=${NC_TESTBED_REQUIRED:-1}
export PATH="$venv/bin:$PATH"
"$venv/bin/python" -m pytest "$@"
