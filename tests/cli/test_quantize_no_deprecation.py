"""A dynamic-int8 run through the CLI prints no deprecation notice (torch.ao's are filtered)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_dynamic_int8_cli_run_prints_no_deprecation(tmp_path) -> None:
    # PYTHONWARNINGS=default shows every warning once, DeprecationWarning included: without the
    # project's filters torch.ao's "is deprecated and will be removed" notice would print here.
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    proc = subprocess.run(
        [sys.executable, "-m", "kdgui", "compress", "demo", "--data", "digits", "--limit", "300",
         "--quantize", "dynamic-int8", "--export", "state_dict", "--out", str(tmp_path / "c")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dynamic-int8" in proc.stdout or "quantize" in proc.stdout  # it did run the step
    for stream in (proc.stdout, proc.stderr):
        assert "deprecated" not in stream.lower(), stream[-2000:]
