# Sourced by scripts/demo and scripts/test: installs the Debian packages the
# project needs when they are missing, and builds a tree.

# Everything a build, the demo and the tests use, by Debian package name.
STS_PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  liblua5.4-dev lua5.4 lua-busted lua-dkjson
  libmosquitto-dev mosquitto mosquitto-clients
  libmbedtls-dev libssl-dev libedit-dev
  openssl netcat-openbsd python3-cryptography python3-cryptography-vectors
  lowdown luarocks systemd prometheus-node-exporter
)

# sts_install_missing [PACKAGE...]: installs those of the packages (by
# default STS_PACKAGES) that are not installed.
sts_install_missing() {
  local missing=() wanted=("$@")
  [ ${#wanted[@]} -eq 0 ] && wanted=("${STS_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing missing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# sts_build DIR [cmake options...]: configures and builds DIR.
sts_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
