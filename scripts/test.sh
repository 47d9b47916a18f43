#!/usr/bin/env bash
# Runs every test: installs missing Debian packages (as root), builds in build/, runs ctest.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ckh_ensure_deps
ckh_build
cd "$CKH_BUILD"
ctest --output-on-failure -j "$CKH_JOBS" "$@"
