"""An int8 TorchScript file loads without torch's native deprecation notice reaching the user,
and nothing else printed to stderr during the load is lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import os, sys, warnings
    import torch
    from torch import nn
    warnings.simplefilter("ignore")  # Python-side notices are not what this test is about
    path = sys.argv[1]
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    q = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
    torch.jit.save(torch.jit.trace(q, torch.randn(2, 1, 8, 8)), path)
    from kdgui.engine.models.script_load import native_notices_dropped, load_script_module
    with native_notices_dropped():
        os.write(2, b"a line of someone else\\n")
        model = load_script_module(path)
    print(tuple(model(torch.randn(3, 1, 8, 8)).shape))
""")


def test_int8_torchscript_loads_without_the_native_deprecation_notice(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "int8.ts")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 10)"
    assert "deprecated" not in done.stderr
    assert "a line of someone else" in done.stderr  # other output is written back, not lost
