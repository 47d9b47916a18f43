#!/usr/bin/env bash
# Runs every test: installs missing Debian packages (as root), builds in build/, builds (once, cached)
# the pinned interop venv of tests/interop/requirements.txt, runs ctest. A venv that cannot be built
# fails the run with the reason: the interop suite is never skipped.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ckh_ensure_deps
ckh_build
"$CKH_ROOT/scripts/interop_venv.sh" >/dev/null
cd "$CKH_BUILD"
ctest --output-on-failure -j "$CKH_JOBS" "$@"
