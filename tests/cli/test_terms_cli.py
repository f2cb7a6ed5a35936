"""``--term`` builds the distillation loss from the command line; bad terms are one line."""

from __future__ import annotations

import json

import pytest

from kdgui.cli.main import main


def _steps(folder):
    events = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "step"]


def test_three_terms_from_the_command_line_run_and_are_each_reported(tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(out), "--set",
                 "training.log_every=5", "--term", "hard",
                 "--term", "dkd:weight=1,alpha=1,beta=8,warmup_epochs=0",
                 "--term", "soft:weight=0.5,temperature=2,standardize=true,label=kd-ls"]) == 0
    steps = _steps(out)
    assert steps and list(steps[0]["losses"]) == ["hard", "dkd", "kd-ls", "total"]
    for s in steps:
        losses = s["losses"]
        assert losses["total"] == pytest.approx(
            losses["hard"] + losses["dkd"] + 0.5 * losses["kd-ls"], rel=1e-4)
    saved = (out / "config.yaml").read_text()
    assert "name: dkd" in saved and "standardize: true" in saved and "alpha: 0.7" not in saved


@pytest.mark.parametrize(("args", "words"), [
    (["--term", "dkdd"], ["unknown loss 'dkdd'", "dkd"]),
    (["--term", "dkd:betta=8"], ["unknown parameter 'betta' of loss 'dkd'"]),
    (["--term", "dkd:beta"], ["'beta' is not KEY=VALUE"]),
    (["--term", "hard", "--alpha", "0.5"], ["distill.terms and the shorthand distill.alpha"]),
    (["--term", "dist:pairs=a>b"], ["loss 'dist' reads no feature maps"]),
])
def test_a_bad_term_is_one_line_and_exit_code_2(tmp_path, capsys, args, words) -> None:
    out = tmp_path / "run"
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    for word in words:
        assert word in err
    assert not out.exists()
