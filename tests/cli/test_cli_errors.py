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


# -- issue 13: everything run rejects, config --check rejects, before any work ------------------

BAD_CONFIGS = {
    "misspelt-step-param": (
        "compression:\n  steps:\n  - {kind: prune, method: magnitude, params: {sparsty: 0.5}}\n",
        "sparsty"),
    "unknown-method": ("compression:\n  steps:\n  - {kind: prune, method: magnitudo}\n",
                       "magnitudo"),
    "param-out-of-range": (
        "compression:\n  steps:\n  - {kind: quantize, method: fake, params: {bits: 9}}\n", "bits"),
    "unknown-preset": ("student:\n  preset: cnn-hugeee\n", "cnn-hugeee"),
    "unknown-teacher-preset": ("teacher:\n  path: null\n  arch: preset:nope\n  num_classes: 10\n",
                               "nope"),
    "unknown-dataset-kind": ("data:\n  spec: imagenet:/data\n", "imagenet"),
    "finetune-without-epochs": ("compression:\n  steps:\n  - {kind: finetune, method: x}\n",
                                "finetune_epochs"),
    "bool-epochs": ("training:\n  epochs: true\n", "must be a number"),
    "quoted-epochs": ('training:\n  epochs: "5"\n', "whole number"),
    "nan-temperature": ("distill:\n  temperature: .nan\n", "must be a number"),
    "dup-yaml": ("training:\n  epochs: 1\n  epochs: 5\n", "'epochs' is given twice"),
    "long-name": ("name: " + "x" * 300 + "\n", "name"),
    "missing-teacher-file": ("teacher:\n  path: no-such-teacher.pt\n", "no-such-teacher.pt"),
    "missing-data-root": ("data:\n  spec: mnist:./no-such-root\n", "no-such-root"),
    "missing-image-folder": ("data:\n  spec: folder:./no-such-images\n", "no-such-images"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_check_and_run_reject_the_same_configs_before_any_work(case, tmp_path, capsys) -> None:
    text, needle = BAD_CONFIGS[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["config", "--check", str(cfg)]) == 2
    check_err = capsys.readouterr().err.strip()
    assert len(check_err.splitlines()) == 1 and needle in check_err, check_err
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--quiet", "--out", str(out)]) == 2
    run_err = capsys.readouterr().err.strip()
    assert run_err == check_err  # the same refusal, from the same place
    assert not out.exists(), "nothing may be written for a config that is refused"


def test_duplicate_json_key_names_the_key_and_line(tmp_path, capsys) -> None:
    cfg = tmp_path / "dup.json"
    cfg.write_text('{"name": "x",\n "training": {"epochs": 1,\n   "epochs": 5}}')
    assert main(["config", "--check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'epochs' is given twice" in err and "line 3" in err


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_5000_deep_list_is_too_deeply_nested_not_a_recursion_error(suffix, tmp_path,
                                                                      capsys) -> None:
    cfg = tmp_path / f"deep{suffix}"
    deep = "[" * 5000 + "]" * 5000
    cfg.write_text(f'{{"name": {deep}}}' if suffix == ".json" else f"name: {deep}\n")
    assert main(["config", "--check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "too deeply nested" in err and "RecursionError" not in err and len(err) < 300


def test_size_limits_refuse_huge_files_and_strings(tmp_path, capsys) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: '" + "x" * (5 * 1024 * 1024) + "'\n")
    assert main(["run", str(big), "--out", str(tmp_path / "r")]) == 2
    assert "larger than 4 MB" in capsys.readouterr().err
    long = tmp_path / "long.yaml"
    long.write_text("teacher:\n  path: '" + "p" * 10_000 + "'\n")
    assert main(["config", "--check", str(long)]) == 2
    err = capsys.readouterr().err
    assert "10,000 characters" in err and len(err) < 300
    assert not (tmp_path / "r").exists()


def test_billion_laughs_is_refused_in_under_200_characters(tmp_path, capsys) -> None:
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    cfg = tmp_path / "lol.yaml"
    cfg.write_text("\n".join(rows) + "\n")
    assert main(["config", "--check", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "YAML aliases" in err and len(err) <= 200, (len(err), err)


def test_a_config_path_that_is_a_directory_says_so(tmp_path, capsys) -> None:
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_flag_errors_name_the_flag(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["demo", "--alpha", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--alpha 2" in err and "--set" not in err and "distill.alpha" not in err
    assert main(["demo", "--temperature", "nan", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--temperature" in err and "must be a number" in err and "100" not in err.split(".")[0]
    assert main(["demo", "--set", "distill.alpha=2", "--out", str(out)]) == 2
    assert "--set: distill.alpha" in capsys.readouterr().err  # a --set names its key
    assert main(["demo", "--set", "training.seed=" + "9" * 5000, "--out", str(out)]) == 2
    assert "internal error" not in capsys.readouterr().err  # Python's 4300-digit int limit
    assert main(["sweep", "--demo", "--vary", "training.seed=" + "9" * 5000, "--out",
                 str(out)]) == 2
    assert "internal error" not in capsys.readouterr().err
    assert not out.exists()


# -- issue 13: trust and terminal safety --------------------------------------------------------

def test_first_bytes_are_quoted_escaped(tmp_path, capsys) -> None:
    bad = tmp_path / "title.pt"
    bad.write_bytes(b"\x1b]0;owned\x07 hello\n")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b]0;owned\\x07" in err  # shown, but as text
    names = tmp_path / "names.pt"  # tensor names are the file's text too
    torch.save({"\x1b]0;owned\x07w": torch.zeros(2)}, names)
    assert main(["inspect", str(names)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;owned\\x07w" in out


def test_trust_says_what_was_trusted_with_its_hash_and_when(tmp_path, capsys) -> None:
    import hashlib

    model = tmp_path / "whole.pt"
    torch.save(Flat(), model)  # a pickled nn.Module: loading it runs code
    assert main(["inspect", str(model)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert main(["inspect", str(model), "--trust"]) == 0
    err = capsys.readouterr().err
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    trusted = [line for line in err.splitlines() if "trusted" in line]
    assert len(trusted) == 1 and str(model) in trusted[0] and sha in trusted[0]
    assert " UTC" in trusted[0]


def test_a_failed_download_leaves_no_empty_dataset_folder(tmp_path, capsys) -> None:
    """The suite blocks the network, so torchvision's real download fails as offline."""
    fresh = tmp_path / "data" / "mnist"
    code = main(["demo", "--data", f"mnist:{fresh}", "--download", "--epochs", "1",
                 "--out", str(tmp_path / "r")])
    assert code == 2 and "offline" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("the user's own file")
    assert main(["demo", "--data", f"mnist:{kept}", "--download", "--epochs", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert sorted(p.name for p in kept.rglob("*")) == ["notes.txt"]  # only what was there
    assert not (tmp_path / "r").exists()
