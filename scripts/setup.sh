#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian machine: system packages for Qt, a virtual
# environment in .venv, and KD Studio installed in it with its GUI and test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages Qt needs (offscreen and X11), QtWebEngine (embedded Netron), Xvfb and fonts.
APT_PACKAGES=(
  libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 fonts-dejavu-core
  libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
  libxcb-xkb1 libxcb-glx0 libxcb-util1
  libnss3 libnspr4 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbfile1 libasound2
  libgbm1 libdrm2 libgssapi-krb5-2
  xvfb xauth fonts-wqy-microhei
)

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${#missing[@]} Debian packages for Qt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
elif command -v apt-get >/dev/null 2>&1; then
  echo "setup: not root; make sure these Debian packages are installed: ${APT_PACKAGES[*]}" >&2
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[gui,dev]'
echo "setup: ready (.venv)"
