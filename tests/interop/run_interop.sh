#!/usr/bin/env bash
# ctest entry for one interop test: runs it with the pinned interop venv's Python (built on first use,
# see scripts/interop_venv.sh). Fails, never skips, when the venv cannot be had.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$("$here/../../scripts/interop_venv.sh")" || { echo "interop: no venv (see the reason above)" >&2; exit 1; }
export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/python" "$@"
