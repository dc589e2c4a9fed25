# Sourced by scripts/test and scripts/run-lab: make sure .venv exists and holds
# the project with its dependencies at the exact versions of constraints.txt
# (scripts/lock writes it). Re-installs only when pyproject.toml or the lock changed.
set -euo pipefail
IOLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$IOLAB_ROOT/.venv"
PY="${IOLAB_PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "iolab: $PY not found; install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "iolab: creating $VENV (first run)" >&2
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.iolab-installed"
if [ ! -f "$STAMP" ] || [ "$IOLAB_ROOT/pyproject.toml" -nt "$STAMP" ] \
        || [ "$IOLAB_ROOT/constraints.txt" -nt "$STAMP" ]; then
    echo "iolab: installing the project and its dependencies into .venv (versions: constraints.txt)" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -c "$IOLAB_ROOT/constraints.txt" -e "$IOLAB_ROOT[test]" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$STAMP"
fi
