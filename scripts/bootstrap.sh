#!/usr/bin/env bash
# Installs what Reelay needs on a Debian/Ubuntu machine, skipping what is already there:
# Debian packages (GStreamer, PyGObject, MariaDB, ffmpeg, Node), the virtualenv, the pinned CDK CLI,
# and kvssink (built once per SDK version into a cache outside the clone: scripts/build-kvssink.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  python3 python3-venv python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
  libswscale6                 # the ladder's scaler (reelay/media/swscale.py, through ctypes)
  gir1.2-gst-rtsp-server-1.0  # the RTSP test and demo camera (local/cameras)
  gstreamer1.0-x              # its Pango plugin: the clock burnt into the test cameras' picture
  ffmpeg mariadb-server mariadb-client nodejs npm make
  chromium  # the e2e suite plays published HLS in a real headless browser
  # to build kvssink (scripts/build-kvssink.sh)
  git ca-certificates cmake g++ pkg-config m4 libssl-dev libcurl4-openssl-dev liblog4cplus-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere (nodesource, nvm): only ask apt for it when there is none.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  # Another apt run (a second worktree's bootstrap) may hold apt's locks: wait for it.
  for try in 1 2 3 4 5 6 7 8 9 10 11 12; do
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq && break
    [ "$try" = 12 ] && exit 1; sleep 10
  done
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
fi

# The venv uses Debian's python3 with system site packages: pip-built PyGObject lacks the Gst
# overrides, Debian's python3-gst-1.0 has them.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import gi" 2>/dev/null; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements*.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat $stamp 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/reelay ]; then
  echo "bootstrap: installing Python requirements into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  # The project itself, editable and without resolving dependencies (pinned above): this installs
  # the `reelay` console script into .venv/bin.
  PYTHONWARNINGS=ignore .venv/bin/pip install -q --no-deps -e .
  echo "$want" > $stamp
fi

if [ ! -x node_modules/.bin/cdk ] || [ package-lock.json -nt node_modules/.bin/cdk ]; then
  echo "bootstrap: installing the pinned AWS CDK CLI"
  npm ci --no-audit --no-fund --silent
  touch node_modules/.bin/cdk
fi

# kvssink from the producer SDK (the relay and its tests use the real one). Instant once built.
scripts/build-kvssink.sh >/dev/null

# The web front end (web/): its own lockfile, and a production build in web/dist that the local
# gateway serves and the web stack deploys. Rebuilt only when the lockfile or a source changed
# (about 6 s of npm ci and 7 s of build on a fresh machine; nothing when up to date).
# Vite 8 needs Node >= 20.19; Debian 12's own nodejs is 18, so say so plainly rather than fail in npm.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "bootstrap: the web front end needs Node >= 20.19 (this is $(node --version)); install Node 20 or 22" \
    "(e.g. NodeSource's nodejs package) and run again" >&2
  exit 1
fi
web_stamp=web/node_modules/.reelay-build.sha
web_want=$(find web/package.json web/package-lock.json web/index.html web/vite.config.ts web/tsconfig.json \
  web/src web/public -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ ! -f web/dist/index.html ] || [ "$(cat $web_stamp 2>/dev/null)" != "$web_want" ]; then
  if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    echo "bootstrap: installing the web front end's packages"
    npm ci --prefix web --no-audit --no-fund --silent
  fi
  echo "bootstrap: building the web front end"
  if ! out=$(npm run --prefix web --silent build 2>&1); then echo "$out" >&2; exit 1; fi
  echo "$web_want" > $web_stamp
fi
