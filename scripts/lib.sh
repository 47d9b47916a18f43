# Shared helpers for scripts/*.sh: dependency installation and the build.
# Sourced, not executed. Idempotent: installs only what is missing, rebuilds incrementally.
set -euo pipefail
CKH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CKH_BUILD="${CKH_BUILD:-$CKH_ROOT/build}"
CKH_JOBS="${CKH_JOBS:-$(nproc)}"

# Debian bookworm packages the build and the tests need (nothing is downloaded by the build itself).
CKH_PACKAGES=(build-essential cmake ninja-build pkg-config libboost-dev libboost-program-options-dev
  libboost-filesystem-dev nlohmann-json3-dev libxsimd-dev libgtest-dev libgmock-dev zlib1g-dev libisal-dev libyaml-cpp-dev
  python3-torch python3-numpy python3-venv)

ckh_ensure_deps() {
  local missing=()
  for p in "${CKH_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ckhost: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "ckhost: missing packages and not root; install them with: apt-get install ${missing[*]}" >&2
      return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ckh_build() {
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  if [ ! -f "$CKH_BUILD/CMakeCache.txt" ]; then
    cmake -S "$CKH_ROOT" -B "$CKH_BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$CKH_BUILD" -j "$CKH_JOBS"
}
