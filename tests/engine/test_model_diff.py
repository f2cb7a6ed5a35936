"""Issue 17.3: two measured models layer by layer (engine rows and ``kdgui diff``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgui.cli.main import main
from kdgui.core.errors import ConfigError
from kdgui.engine.metrics import layer_table
from kdgui.engine.model_diff import diff_layers, diff_models


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_diff_marks_only_the_pruned_layer_as_changed() -> None:
    before = _mlp()
    after = copy.deepcopy(before)
    with torch.no_grad():
        w = after[1].weight
        w[w.abs() < w.abs().median()] = 0.0
    rows = diff_layers(layer_table(before, (1, 8, 8)), layer_table(after, (1, 8, 8)))
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == ["0", "1", "2", "3"]
    assert by_name["1"]["status"] == "changed" and by_name["1"]["changed"] == ["nonzero"]
    assert by_name["1"]["sparsity"][0] == 0.0 and by_name["1"]["sparsity"][1] == pytest.approx(
        0.5, abs=0.01)
    assert {by_name[n]["status"] for n in ("0", "2", "3")} == {"same"}


def test_diff_lists_layers_only_one_side_has() -> None:
    small = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    rows = diff_layers(layer_table(_mlp(), (1, 8, 8)), layer_table(small, (1, 8, 8)))
    assert [r["status"] for r in rows] == ["same", "changed", "only A", "only A"]
    assert rows[1]["params"] == [64 * 32 + 32, 64 * 10 + 10]


def test_kdgui_diff_on_a_run_before_and_after_pruning(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["run", "--teacher", "demo", "--data", "digits", "--out", str(run), "--quiet",
                 "--prune", "unstructured:0.5", "--set", "training.epochs=1",
                 "--set", "training.num_threads=1", "--set", "data.limit=400"]) == 0
    result = diff_models(f"{run}:student", str(run))
    assert result["b"] == f"{run}:prune"  # the last model measured
    assert result["changed"] > 0 and result["params"][0] == result["params"][1]
    changed = [r for r in result["rows"] if r["status"] == "changed"]
    assert all("nonzero" in r["changed"] for r in changed)
    capsys.readouterr()
    assert main(["diff", f"{run}:student", str(run), "--changed"]) == 0
    out = capsys.readouterr().out
    assert "→" in out and "layers differ" in out
    with pytest.raises(ConfigError, match="no model named 'nope'"):
        diff_models(f"{run}:nope", str(run))
    assert main(["diff", f"{run}:nope", str(run)]) == 2
