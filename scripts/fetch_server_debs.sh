#!/usr/bin/env bash
# Downloads the .deb files `kiln serve` needs to build on a machine that lacks
# them (the GPU machine: CUDA, cmake, ninja, a compiler and protobuf, but no
# Boost and no gRPC C++) into .debs/ (gitignored), for scripts/gpu_check.sh's
# `serve` stage to unpack with dpkg -x: Boost's headers, gRPC C++ with its
# protoc plugin, and their dependencies except those a stock machine with a
# compiler and protobuf has (libc, libstdc++, gcc's runtimes, zlib, OpenSSL's
# runtime, protobuf). Uses this machine's apt sources, or with
# SERVER_DEBS_RELEASE=ubuntu:noble (the GPU machine's Ubuntu 24.04) a private
# apt root over https://archive.ubuntu.com whose signatures apt checks with
# the ubuntu-keyring package fetched over TLS. The GPU machine must run the
# release the debs are for (the stage checks .debs/distro.txt).
#   fetch_server_debs.sh [EXTRA_PACKAGE...]
#   STOCK_PACKAGES  a file of package names (one a line, e.g. from
#                   `dpkg-query -W -f '${Package}\n'` there) to leave out too
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=(libboost-dev libgrpc++-dev protobuf-compiler-grpc pkgconf "$@")
# What a stock machine with a compiler and protobuf already has.
stock='^(libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt1|libcrypt-dev|libstdc\+\+6|libstdc\+\+-[0-9]+-dev|'
stock+='libgcc-s1|libgcc-[0-9]+-dev|gcc-[0-9]+-base|libgomp1|libitm1|libatomic1|libasan[0-9]+|liblsan0|'
stock+='libtsan[0-9]+|libubsan1|libquadmath0|libhwasan0|zlib1g|zlib1g-dev|libssl3|libssl3t64|libprotobuf[0-9]*(t64)?|'
stock+='libprotobuf-lite[0-9]*(t64)?|libprotobuf-dev|libprotoc[0-9]*(t64)?|libprotoc-dev|protobuf-compiler|libtirpc[0-9]*|'
stock+='libtirpc-common|libtirpc-dev|libnsl[0-9]*|libnsl-dev|rpcsvc-proto|libkrb5-3|libkrb5support0|libk5crypto3|'
stock+='libgssapi-krb5-2|libcom-err2|libkeyutils1|debconf|dpkg|perl-base|libselinux1|libpcre2-8-0)$'
apt_opts=()
distro=""
if [[ -n ${SERVER_DEBS_RELEASE:-} ]]; then
  id=${SERVER_DEBS_RELEASE%%:*} codename=${SERVER_DEBS_RELEASE#*:}
  [[ $id == ubuntu && -n $codename ]] || { echo "SERVER_DEBS_RELEASE: only ubuntu:CODENAME is known" >&2; exit 2; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mirror=https://archive.ubuntu.com/ubuntu
  mkdir -p "$root/etc/apt/apt.conf.d" "$root/etc/apt/preferences.d" "$root/etc/apt/sources.list.d" \
    "$root/var/lib/apt/lists/partial" "$root/var/cache/apt/archives/partial" "$root/var/lib/dpkg" "$root/keyring"
  touch "$root/var/lib/dpkg/status"
  # The archive key, from the keyring package named in the release's index (both over TLS).
  curl -fsSL "$mirror/dists/$codename/main/binary-amd64/Packages.gz" | gzip -d >"$root/Packages"
  keyring_deb=$(awk '/^Package: ubuntu-keyring$/ {p = 1} p && /^Filename:/ {print $2; exit}' "$root/Packages")
  curl -fsSL "$mirror/$keyring_deb" -o "$root/keyring.deb"
  dpkg -x "$root/keyring.deb" "$root/keyring"
  key="$root/keyring/usr/share/keyrings/ubuntu-archive-keyring.gpg"
  [[ -f $key ]] || { echo "no ubuntu-archive-keyring.gpg in $keyring_deb" >&2; exit 1; }
  for suite in "$codename" "$codename-updates" "$codename-security"; do
    echo "deb [arch=amd64 signed-by=$key] $mirror $suite main universe"
  done >"$root/etc/apt/sources.list"
  apt_opts=(-o "Dir=$root" -o "Dir::State::status=$root/var/lib/dpkg/status" -o "APT::Architecture=amd64"
    -o "APT::Architectures=amd64" -o "Dir::Etc::trusted=/dev/null" -o "Dir::Etc::trustedparts=$root/keyring")
  apt-get "${apt_opts[@]}" update >/dev/null
  distro="$id $codename amd64"
fi
packages=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
  --no-enhances "${wanted[@]}" | grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$stock" || true)
if [[ -n ${STOCK_PACKAGES:-} ]]; then
  packages=$(grep -vxF -f "$STOCK_PACKAGES" <<<"$packages" || true)
fi
rm -rf .debs
mkdir -p .debs
# shellcheck disable=SC2086
(cd .debs && apt-get "${apt_opts[@]}" download $packages >/dev/null)
if [[ -z $distro ]]; then
  . /etc/os-release
  distro="${ID:-unknown} ${VERSION_CODENAME:-${VERSION_ID:-unknown}} $(dpkg --print-architecture)"
fi
echo "$distro" >.debs/distro.txt
count=$(ls .debs/*.deb | wc -l)
size=$(du -cb .debs/*.deb | tail -1 | cut -f1)
awk -v n="$count" -v s="$size" -v d="$(cat .debs/distro.txt)" 'BEGIN { printf ".debs: %d packages, %.1f MiB (%s)\n", n, s / 1048576, d }'
for deb in .debs/*.deb; do basename "$deb"; done
