"""``kdgui compress … --quantize kmeans:BUDGET`` end to end, as a user types it: the plan keeps
the budget, is recorded, and the entropy-coded file it exports loads back as a model."""

from __future__ import annotations

import json
from pathlib import Path

from kdgui.cli.main import main


def test_compress_with_a_bit_budget_plans_records_and_exports(tmp_path: Path, capsys) -> None:
    out = tmp_path / "km"
    code = main(["compress", "demo", "--data", "digits", "--prune", "unstructured:0.8",
                 "--quantize", "kmeans:3", "--export", "deepc", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Mixed precision by sensitivity" in printed
    plan = json.loads((out / "summary.json").read_text())["deep_compression"]["bit_plan"]
    assert plan["budget_bits"] == 3.0
    assert 2.0 <= plan["average_bits"] <= 3.0  # codebooks counted, never over budget
    assert set(plan["plan"]) == set(plan["layers"])
    assert all(2 <= bits <= 8 for bits in plan["plan"].values())
    assert main(["inspect", str(out / "model.kdc")]) == 0
    assert "params" in capsys.readouterr().out
