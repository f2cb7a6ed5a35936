"""Bad input through the CLI: exit code 2, one line naming the problem and the fix, no
traceback, no half-written run folder, and pickles never executed without --trust."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgui.cli.main import main


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class Flat(nn.Module):
    def __init__(self, in_ch: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


MODEL_PY = """
import torch
from torch import nn

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""


def _files(tmp: Path) -> dict[str, list[str]]:
    """name -> extra CLI args making the demo use that bad teacher."""
    (tmp / "empty.pt").write_bytes(b"")
    good = io.BytesIO()
    torch.save(Flat().state_dict(), good)
    (tmp / "truncated.pt").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp / "random.pt").write_bytes(bytes(range(256)) * 40)
    (tmp / "text.pt").write_text("this is not a model\n")
    with zipfile.ZipFile(tmp / "notorch.pt", "w") as zf:
        zf.writestr("hello.txt", "hi")
    torch.save(Flat().state_dict(), tmp / "weights.pt")
    (tmp / "model.py").write_text(MODEL_PY)
    with open(tmp / "evil.pt", "wb") as fh:
        pickle.dump(_Evil(tmp / "PWNED"), fh)
    torch.jit.save(torch.jit.script(Flat(classes=1000)), tmp / "thousand.pt")
    torch.jit.save(torch.jit.script(Flat(in_ch=3)), tmp / "rgb.pt")
    return {
        "empty": ["--teacher", str(tmp / "empty.pt")],
        "truncated": ["--teacher", str(tmp / "truncated.pt"), "--arch", "preset:cnn-small"],
        "random": ["--teacher", str(tmp / "random.pt")],
        "text": ["--teacher", str(tmp / "text.pt")],
        "zip": ["--teacher", str(tmp / "notorch.pt")],
        "no-arch": ["--teacher", str(tmp / "weights.pt")],
        "wrong-arch": ["--teacher", str(tmp / "weights.pt"), "--arch", f"{tmp / 'model.py'}:Small"],
        "pickle": ["--teacher", str(tmp / "evil.pt")],
        "1000-classes": ["--teacher", str(tmp / "thousand.pt")],
        "3-channels": ["--teacher", str(tmp / "rgb.pt")],
        "missing-data": ["--data", f"mnist:{tmp / 'no-such-folder'}"],
        "weights-sum": ["--alpha", "0.7", "--beta", "0.4"],
        "temperature": ["--temperature", "0"],
    }


EXPECT = {
    "empty": "empty",
    "truncated": "",
    "random": "",
    "text": "",
    "zip": "",
    "no-arch": "--arch",
    "wrong-arch": "",
    "pickle": "--trust",
    "1000-classes": "1000",
    "3-channels": "channel",
    "missing-data": "no-such-folder",
    "weights-sum": "alpha + beta + gamma",
    "temperature": "temperature",
}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", list(EXPECT))
def test_bad_input_exits_2_with_one_line(case, bad_inputs, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["demo", "--epochs", "1", "--quiet", "--out", str(out), *bad_inputs[case]])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert EXPECT[case].lower() in err.lower(), err
    assert not out.exists(), "a failed run must not leave a run folder"
    if case == "pickle":
        assert not (bad_inputs["pickle"][1] and Path(bad_inputs["pickle"][1]).with_name("PWNED")
                    .exists()), "the pickle's code ran"


def test_unknown_config_key(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  epochz: 3\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "training.epochz" in err and str(cfg) in err
    assert not (tmp_path / "r").exists()


def test_nan_learning_rate_exits_2_naming_the_step(tmp_path, capsys) -> None:
    code = main(["demo", "--epochs", "1", "--quiet", "--lr", "1e4", "--student", "mlp-small", "--optimizer", "sgd",
                 "--schedule", "none", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "step" in err and "learning rate" in err


def test_inspect_state_dict_without_arch_lists_tensors(bad_inputs, capsys) -> None:
    weights = bad_inputs["no-arch"][1]
    assert main(["inspect", weights]) == 0
    out = capsys.readouterr().out
    assert "conv.weight" in out and "architecture" in out.lower()


def test_debug_shows_traceback_in_a_real_process(bad_inputs, tmp_path) -> None:
    base = [sys.executable, "-m", "kdgui", "demo", "--epochs", "1", "--out", str(tmp_path / "r"),
            *bad_inputs["random"]]
    plain = subprocess.run(base, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run([*base[:3], "--debug", *base[3:]], capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
