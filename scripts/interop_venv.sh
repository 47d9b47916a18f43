#!/usr/bin/env bash
# Builds (once) and prints the path of the interop venv: the pinned real producers and consumers of
# tests/interop/requirements.txt (torch 2.13 CPU, transformers, megatron-core, safetensors, gguf, ...).
#
# The venv lives at $CKHOST_CACHE/interop-<hash> (default ~/.cache/ckhost), where <hash> covers the
# requirements file and the Python version: it is reused while they match and rebuilt when they change.
# It is built in a temporary sibling and renamed into place when complete, under a lock, so parallel
# callers and an interrupted build never see a half-made venv. Any failure exits non-zero with the
# reason: the interop suite never skips.
#
# usage: scripts/interop_venv.sh          prints the venv directory on stdout (build messages on stderr)
#        CKHOST_INTEROP_PYTHON=python3.11 to choose the interpreter (default: python3 on PATH)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/tests/interop/requirements.txt"
req_nodeps="$root/tests/interop/requirements-nodeps.txt"
py="${CKHOST_INTEROP_PYTHON:-python3}"
cache="${CKHOST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/cache}/.cache}/ckhost}"

die() { echo "ckhost interop venv: $*" >&2; exit 1; }
command -v "$py" >/dev/null || die "no Python interpreter '$py' on PATH (set CKHOST_INTEROP_PYTHON)"
pyver="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" || die "'$py' does not run"
case "$pyver" in 3.11.*) ;; *) die "Python $pyver: the pins in $req are for Python 3.11 (torch 2.13.0's wheel, megatron-core 0.16.1)";; esac
hash="$( (cat "$req"; cat "$req_nodeps" 2>/dev/null; echo "python $pyver") | sha256sum | cut -c1-16)"
venv="$cache/interop-$hash"
mkdir -p "$cache" || die "cannot create $cache"

if [ ! -f "$venv/.ckhost-ready" ]; then
  exec 9>"$cache/.interop.lock"
  flock 9 || die "cannot lock $cache/.interop.lock"
  if [ ! -f "$venv/.ckhost-ready" ]; then
    echo "ckhost: building the interop venv $venv (Python $pyver, $req)" >&2
    start=$(date +%s)
    tmp="$venv.tmp-$$"
    rm -rf "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    "$py" -m venv "$tmp" || die "python -m venv failed (Debian: apt-get install python3-venv)"
    log="$tmp/.pip.log"
    if ! "$tmp/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >"$log" 2>&1; then
      grep -v '^WARNING: Location' "$log" | tail -20 >&2
      die "pip install -r $req failed (the lines above say why)"
    fi
    # Packages whose declared dependencies would replace the pins above (kt-kernel pins torch 2.9.1): installed
    # without their dependencies; what they need at run time is pinned in requirements.txt.
    if [ -s "$req_nodeps" ] && ! "$tmp/bin/python" -m pip install --disable-pip-version-check --no-input -q --no-deps \
        -r "$req_nodeps" >>"$log" 2>&1; then
      grep -v '^WARNING: Location' "$log" | tail -20 >&2
      die "pip install --no-deps -r $req_nodeps failed (the lines above say why)"
    fi
    # llama.cpp's own converter (convert_hf_to_gguf.py with its conversion/ and gguf-py/), the oracle of the GGUF
    # tests and the baseline of bench/gguf: from the sdist of the pinned llama-cpp-python, which vendors llama.cpp.
    lcp="$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' "$req")"
    if [ -n "$lcp" ]; then
      sd="$tmp/.sdist"
      "$tmp/bin/python" -m pip download --disable-pip-version-check --no-input -q --no-deps --no-binary :all: \
        -d "$sd" "llama-cpp-python==$lcp" >>"$log" 2>&1 || die "pip download of the llama-cpp-python $lcp sdist failed"
      tar -xzf "$sd/llama_cpp_python-$lcp.tar.gz" -C "$sd" || die "cannot unpack the llama-cpp-python $lcp sdist"
      mkdir -p "$tmp/share/llama.cpp"
      for x in convert_hf_to_gguf.py conversion gguf-py; do
        cp -r "$sd/llama_cpp_python-$lcp/vendor/llama.cpp/$x" "$tmp/share/llama.cpp/" || die "the sdist has no vendor/llama.cpp/$x"
      done
      rm -rf "$sd"
    fi
    # torch must be the CPU build pinned above, not a CUDA build pulled in by a dependency.
    got="$("$tmp/bin/python" -c 'import torch; print(torch.__version__)')" || die "torch does not import in the new venv"
    case "$got" in 2.13.0*) ;; *) die "the venv got torch $got, not 2.13.0";; esac
    "$tmp/bin/python" -m pip freeze --disable-pip-version-check >"$tmp/.ckhost-freeze.txt" 2>/dev/null || true
    rm -rf "$venv"
    # A venv's scripts name its own path: build under the final name's sibling, then fix them up by
    # re-creating the launcher scripts in place after the rename.
    mv "$tmp" "$venv"
    trap - EXIT
    "$py" -m venv --upgrade "$venv" >/dev/null 2>&1 || die "venv --upgrade of $venv failed"
    sed -i "s#$tmp#$venv#g" "$venv"/bin/* 2>/dev/null || true
    "$venv/bin/python" -c 'import torch, transformers, megatron.core, safetensors, gguf, accelerate, numpy' 2>/dev/null ||
      { rm -rf "$venv"; die "the venv at $venv does not import its packages after the move"; }
    touch "$venv/.ckhost-ready"
    echo "ckhost: interop venv ready in $(( $(date +%s) - start )) s" >&2
    # Older venvs of this checkout's cache (other requirement hashes) are left alone: other checkouts may use them.
  fi
fi
echo "$venv"
