#!/bin/sh
# Install what benchmarks/run.py needs besides nydus-console itself (Debian 12, root).
# Ansible goes into its own venv so that it cannot change the console's packages.
# run.py uses /tmp/nc-bench-ansible/bin/ansible unless --ansible names another.
set -eu
apt-get install -y pssh tmux openssh-server openssh-client
venv=${1:-/tmp/nc-bench-ansible}
python3 -m venv "$venv"
"$venv/bin/pip" install ansible-core
