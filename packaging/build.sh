#!/usr/bin/env bash
# Build KD Studio as a one-folder app (dist/kdgui/) with PyInstaller and report its size.
#
#   bash packaging/build.sh              full build, then `dist/kdgui/kdgui --version`
#   bash packaging/build.sh --analysis   only PyInstaller's Analysis step (checks hidden imports
#                                        and data files in a few minutes, builds nothing)
#
# Needs the venv from scripts/setup.sh; installs the `package` extra (PyInstaller) into it.
# The bundle holds whatever torch the venv has: PyPI's Linux torch is the CUDA build (~5 GB of
# bundle); see packaging/NOTES.md for a CPU-only bundle and for Windows and macOS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DIST=${KDGUI_DIST:-dist}
WORK=${KDGUI_WORK:-build/pyinstaller}

if [ ! -x "$PY" ]; then
  echo "build: no .venv; run 'bash scripts/setup.sh' first" >&2
  exit 2
fi
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install -q -e '.[gui,package]'

# Icons are generated from the SVG; regenerate only when a size is missing.
"$PY" packaging/make_icons.py --check 2>/dev/null || "$PY" packaging/make_icons.py

# Desktop metadata: validate where the Debian tools are installed (desktop-file-utils, appstream).
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate packaging/linux/org.kdgui.KDStudio.desktop
fi
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net packaging/linux/org.kdgui.KDStudio.metainfo.xml
fi

if [ "${1:-}" = "--analysis" ]; then
  KDGUI_ANALYSIS_ONLY=1 "$PY" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" packaging/kdgui.spec
  exit 0
fi

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" packaging/kdgui.spec
secs=$(( $(date +%s) - start ))

APP="$DIST/kdgui"
# Desktop integration files travel with the bundle (see NOTES.md for installing them).
mkdir -p "$APP/share/applications" "$APP/share/metainfo"
cp packaging/linux/org.kdgui.KDStudio.desktop "$APP/share/applications/"
cp packaging/linux/org.kdgui.KDStudio.metainfo.xml "$APP/share/metainfo/"
for png in resources/icons/kdgui-*.png; do
  size=${png##*-}; size=${size%.png}
  mkdir -p "$APP/share/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$APP/share/icons/hicolor/${size}x${size}/apps/org.kdgui.KDStudio.png"
done
mkdir -p "$APP/share/icons/hicolor/scalable/apps"
cp resources/icons/kdgui.svg "$APP/share/icons/hicolor/scalable/apps/org.kdgui.KDStudio.svg"

echo "build: $APP built in ${secs}s"
"$APP/kdgui" --version
echo "build: bundle size $(du -sh "$APP" | cut -f1) ($(du -sb "$APP" | cut -f1) bytes); largest parts:"
du -sh "$APP"/_internal/* 2>/dev/null | sort -rh | head -8
