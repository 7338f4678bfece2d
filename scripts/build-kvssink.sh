#!/usr/bin/env bash
# Builds kvssink (the Kinesis Video Streams GStreamer sink) from the producer SDK, once per version.
# The ONE build recipe: transcoder/Dockerfile and scripts/bootstrap.sh both run this script.
#
#   scripts/build-kvssink.sh                 build into the cache (if not there yet), print its directory
#   scripts/build-kvssink.sh --prefix DIR    build into DIR instead (the image uses /opt/kvssink)
#   scripts/build-kvssink.sh --print-dir     print where the plugin is (or would be) and exit
#
# Result: one directory holding libgstkvssink.so and the SDK libraries it links, all with rpath
# $ORIGIN, so GST_PLUGIN_PATH=<dir> is all a process needs (no LD_LIBRARY_PATH).
# Default directory: ${REELAY_CACHE_DIR:-$HOME/.cache/reelay}/kvssink/<version>-r<recipe>/, outside the
# clone so every worktree and every `make test` on this machine share one build; a clone with another
# recipe uses (and keeps) its own directory. A stamp file (version, recipe, checksum of the patches)
# marks a complete build; with it present the script returns at once.
#
# Patches: every scripts/kvssink-patches/*.patch is applied, in name order, to the SDK before it is
# built (each file says what it fixes and why). The Dockerfile copies that folder beside this script.
#
# Offline: if $REELAY_KVS_MIRROR or <repo>/../shared/vendor/kvs-producer-sdk holds the git mirror, git
# reads https://github.com/awslabs/* from it (url.insteadOf in a private GIT_CONFIG_GLOBAL file; the
# user's git config is never touched). The SDK's CMake clones producer-C and PIC at configure time,
# and the rewrite covers those clones too. Without a mirror, it clones GitHub.
set -euo pipefail

# The pin. The Dockerfile may override it with --build-arg KVS_SDK_VERSION=...
KVS_SDK_VERSION="${KVS_SDK_VERSION:-v3.4.2}"
# Bump when the recipe below changes the result, so caches built by an older recipe are rebuilt
# (reelay/relay/kvssink.py's KVSSINK_RECIPE names the same directory). 2: the finalize leak patch.
RECIPE=2
KVS_REPO=https://github.com/awslabs/amazon-kinesis-video-streams-producer-sdk-cpp.git
PACKAGES=(git ca-certificates cmake make g++ pkg-config m4 libssl-dev libcurl4-openssl-dev liblog4cplus-dev
          libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools)

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
patches=("$here"/kvssink-patches/*.patch)
[ -f "${patches[0]}" ] || { echo "build-kvssink: no patches in $here/kvssink-patches" >&2; exit 1; }
patch_sum="$(cat "${patches[@]}" | sha256sum | cut -c1-16)"
prefix=""
print_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --print-dir) print_only=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "build-kvssink: unknown argument $1" >&2; exit 2 ;;
  esac
done
dest="${prefix:-${REELAY_CACHE_DIR:-$HOME/.cache/reelay}/kvssink/$KVS_SDK_VERSION-r$RECIPE}"
stamp="$dest/.complete"
want_stamp="version=$KVS_SDK_VERSION recipe=$RECIPE patches=$patch_sum"
if [ "$print_only" = 1 ]; then echo "$dest"; exit 0; fi
if [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ]; then echo "$dest"; exit 0; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "build-kvssink: installing Debian packages: ${missing[*]}" >&2
  # Another apt run (a second worktree's bootstrap) may hold apt's locks: wait for it.
  for try in 1 2 3 4 5 6 7 8 9 10 11 12; do
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq && break
    [ "$try" = 12 ] && exit 1; sleep 10
  done
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
fi

# One build at a time per destination: worktrees and parallel `make` runs share the cache.
mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ]; then echo "$dest"; exit 0; fi

# Build in a private temp dir: the mirror may be read-only (CI's copy of shared/), and a half-done
# build must never look like a cache hit.
work="$(mktemp -d "${TMPDIR:-/tmp}/kvssink-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL="$work/gitconfig"
: > "$GIT_CONFIG_GLOBAL"
mirror="${REELAY_KVS_MIRROR:-$repo/../shared/vendor/kvs-producer-sdk}"
depth=(--depth 1)  # a local mirror is cloned whole (git ignores --depth there, with a warning)
if [ -d "$mirror" ]; then
  depth=()
  mirror="$(cd "$mirror" && pwd)"
  git config --global url."$mirror/".insteadOf https://github.com/awslabs/
  # The mirror belongs to another user on shared machines; git refuses such repositories otherwise.
  git config --global --add safe.directory '*'
  echo "build-kvssink: using the offline mirror $mirror" >&2
fi

started=$(date +%s)
echo "build-kvssink: building kvssink $KVS_SDK_VERSION (about a minute on 2 cores)" >&2
git -c advice.detachedHead=false clone -q "${depth[@]}" --branch "$KVS_SDK_VERSION" "$KVS_REPO" "$work/src"
for p in "${patches[@]}"; do
  git -C "$work/src" apply "$p" || { echo "build-kvssink: $p does not apply to $KVS_SDK_VERSION" >&2; exit 1; }
  echo "build-kvssink: applied $(basename "$p")" >&2
done
# BUILD_DEPENDENCIES=OFF links Debian's openssl, curl and log4cplus; the SDK still fetches producer-C
# (and its PIC) at configure time and builds them in this tree. Every target gets rpath $ORIGIN so the
# plugin finds its SDK libraries next to it wherever the directory is installed.
cmake -S "$work/src" -B "$work/build" -DBUILD_GSTREAMER_PLUGIN=ON -DBUILD_DEPENDENCIES=OFF \
  -DBUILD_SAMPLES=OFF -DBUILD_TEST=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH='$ORIGIN' >"$work/cmake.log" 2>&1 \
  || { tail -40 "$work/cmake.log" >&2; exit 1; }
make -C "$work/build" -j"$(nproc)" gstkvssink >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }

stage="$work/out"
mkdir -p "$stage"
cp "$work/build/libgstkvssink.so" "$stage/"
find "$work/build" \( -type f -o -type l \) \( -name 'libKinesisVideoProducer.so*' -o -name 'libcproducer.so*' \
  -o -name 'libkvsCommonCurl.so*' \) -exec cp -a {} "$stage/" \;
# Prove it loads from its own directory with nothing but GST_PLUGIN_PATH (and a throwaway registry).
if ! GST_PLUGIN_PATH="$stage" GST_REGISTRY="$work/registry.bin" gst-inspect-1.0 kvssink >/dev/null 2>&1; then
  echo "build-kvssink: the plugin does not load" >&2; ldd "$stage/libgstkvssink.so" >&2; exit 1
fi
echo "$want_stamp" > "$stage/.complete"

# Install atomically: move the finished directory into place, then drop the old one.
parent="$(dirname "$dest")"
mkdir -p "$parent"
tmp_dest="$(mktemp -d "$parent/.$(basename "$dest").XXXXXX")"
cp -a "$stage/." "$tmp_dest/"
chmod 755 "$tmp_dest"
if [ -e "$dest" ]; then
  old="$parent/.$(basename "$dest").old.$$"
  mv "$dest" "$old"
  mv "$tmp_dest" "$dest"
  rm -rf "$old"
else
  mv "$tmp_dest" "$dest"
fi
echo "build-kvssink: kvssink $KVS_SDK_VERSION ready in $dest ($(( $(date +%s) - started )) s)" >&2
echo "$dest"
