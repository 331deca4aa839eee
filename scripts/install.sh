#!/usr/bin/env bash
# Install nydus-console into its own virtual environment and start it.
#
#   ./scripts/install.sh [nydus-console arguments...]
#
# The environment lives in ${NYDUS_CONSOLE_HOME:-~/.local/share/nydus-console}
# and the command is linked into ~/.local/bin. With no arguments and no
# inventory, the console manages this machine.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
home=${NYDUS_CONSOLE_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/nydus-console}
venv=$home/venv
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "nydus-console needs Python 3.11 or newer as '$python' (set PYTHON=...)" >&2
    exit 1
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing python3-venv with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
        echo "'$python -m venv' is not available; install python3-venv" >&2
        exit 1
    fi
fi

echo "installing nydus-console into $venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$repo"
mkdir -p "$HOME/.local/bin"
ln -sf "$venv/bin/nydus-console" "$HOME/.local/bin/nydus-console"
echo "installed: $HOME/.local/bin/nydus-console"
case ":$PATH:" in
    *":$HOME/.local/bin:"*) ;;
    *) echo "note: $HOME/.local/bin is not in PATH; add it, or run" \
            "$HOME/.local/bin/nydus-console" ;;
esac

if [ -t 1 ]; then
    exec "$venv/bin/nydus-console" "$@"
fi
echo "not a terminal: run 'nydus-console' to start it"
