#!/usr/bin/env bash
# Set up (idempotent), then run every check: ruff, the layering contracts, the strict docs
# build and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check kdgui tests bench scripts docs packaging
.venv/bin/lint-imports
# The docs build strictly before the tests, so the test summary is the last thing printed.
.venv/bin/mkdocs build --strict --site-dir "$(mktemp -d)" 2>&1 | tail -n 3
.venv/bin/python -m pytest "$@"
