#!/usr/bin/env bash
# Set up (idempotent), then run every check: ruff, the layering contracts and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check kdgui tests bench scripts docs packaging
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
.venv/bin/mkdocs build --strict --site-dir "$(mktemp -d)"
