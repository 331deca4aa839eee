#!/usr/bin/env bash
# Install everything the test suite needs on Debian 12 and run all of it:
# lint, type checks and pytest, including the tier of booted Debian nodes.
#
#   sudo ./scripts/test.sh [pytest arguments...]
#   sudo ./scripts/test.sh --setup-only    # install only; the venv is .venv-test
#   sudo NC_KUBE_BUILD=0 ./scripts/test.sh # skip the kube-apiserver build and tests
#
# Needs root (the testbed boots systemd-nspawn nodes in network namespaces)
# and the Debian and PyPI package registries. The first run builds the node
# base with debootstrap (about a minute) and caches it under
# ${NC_CACHE:-/var/cache/nydus-console-testbed}. It also builds the
# kube-apiserver of the Kubernetes tests there (5 to 9 minutes, once).
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
# Debian's prometheus, etcd-server and docker-registry packages enable and
# start their services, which listen on ports 9090, 2379 and 5000 of every
# address. The tests run their own on 127.0.0.1, so a policy-rc.d(8) that
# denies them keeps the packages from starting them, unless the machine
# already has a policy of its own.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    own_policy=$policy
    trap 'rm -f "$own_policy"' EXIT
    cat >"$policy" <<'POLICY'
#!/bin/sh
# Written by nydus-console's scripts/test.sh for the package install only.
[ "$1" = --quiet ] && shift
case "$1" in
    prometheus|prometheus.service|etcd|etcd.service) exit 101 ;;
    docker-registry|docker-registry.service) exit 101 ;;
esac
exit 0
POLICY
    chmod 755 "$policy"
fi
prometheus_before=$(dpkg-query -W -f='${Status}' prometheus 2>/dev/null || true)
etcd_before=$(dpkg-query -W -f='${Status}' etcd-server 2>/dev/null || true)
registry_before=$(dpkg-query -W -f='${Status}' docker-registry 2>/dev/null || true)
# --no-install-recommends keeps libnss-mymachines (a systemd-container
# recommendation) from rewriting the host's nsswitch.conf, and keeps
# prometheus-node-exporter (a prometheus recommendation) out.
apt-get install -y -qq --no-install-recommends \
    openssh-server openssh-client containerd debootstrap systemd-container \
    iproute2 zstd tmux procps util-linux sudo ca-certificates python3-venv \
    prometheus etcd-server docker-registry \
    >/dev/null
if [ -n "$own_policy" ]; then
    rm -f "$own_policy"
    trap - EXIT
fi
# A fresh install also enabled the unit for the next boot, so disable it
# where systemd runs. An install that was there before is left as it was.
if [ "$prometheus_before" != "install ok installed" ] \
    && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
if [ "$etcd_before" != "install ok installed" ] && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
fi
if [ "$registry_before" != "install ok installed" ] \
    && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
/usr/bin/prometheus --version >/dev/null
/usr/bin/docker-registry --version >/dev/null

echo "== installing Python packages"
python=${PYTHON:-python3}
venv=${NC_TEST_VENV:-$repo/.venv-test}
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$repo[test]"
echo "== kube-apiserver for the Kubernetes tests"
# The tests run a real kube-apiserver, which Debian ships only as source.
# NC_KUBE_APISERVER marks the binary as expected, so a failed build fails
# those tests instead of skipping them.
if [ "${NC_KUBE_BUILD:-1}" != 0 ]; then
    export NC_KUBE_APISERVER=${NC_CACHE:-/var/cache/nydus-console-testbed}/kube-apiserver/kube-apiserver
    "$repo/scripts/build-kube-apiserver" \
        || echo "!! kube-apiserver build failed: the Kubernetes tests will fail" >&2
fi
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
