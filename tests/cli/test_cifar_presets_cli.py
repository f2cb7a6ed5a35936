"""The CIFAR presets as teacher and student from the command line, with a three-term loss whose
relation term reads the presets' feature maps (hard + DKD + RKD)."""

from __future__ import annotations

import json

import pytest

from kdgui.cli.main import main

CONFIG = """\
schema_version: 2
data: {spec: digits, limit: 160}
teacher: {arch: "preset:resnet8x4", arch_kwargs: {width: 0.125}, train_epochs: 1}
student: {preset: resnet20, width: 0.25}
training: {epochs: 1, batch_size: 32, log_every: 1}
"""


def test_preset_teacher_and_student_with_hard_dkd_rkd_from_the_cli(tmp_path) -> None:
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "cfg.yaml"), "--quiet", "--out", str(out),
                 "--term", "hard", "--term", "dkd:weight=1,warmup_epochs=0",
                 "--term", "rkd:weight=0.5"]) == 0
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step" and e.get("stage", "distill") == "distill"]
    assert steps and list(steps[0]["losses"]) == ["hard", "dkd", "rkd", "total"]
    for s in steps:
        losses = s["losses"]
        assert losses["rkd"] > 0  # the feature taps of both presets were read
        assert losses["total"] == pytest.approx(
            losses["hard"] + losses["dkd"] + 0.5 * losses["rkd"], rel=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["student"]["params"] > 0 and summary["teacher"]["params"] > 0
