#!/usr/bin/env bash
# Set up (idempotent), then run KD Studio on its embedded demo: in the window when a display
# is available (it distills the demo at once and stays open), headless otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${KDGUI_HEADLESS:-0}" != "1" ]; then
  exec .venv/bin/kdgui --demo --autorun
fi
echo "demo: no display found; running headless (the window needs a display: try it on your desktop)"
exec .venv/bin/kdgui demo --out "runs/demo-$(date +%Y%m%d-%H%M%S)"
