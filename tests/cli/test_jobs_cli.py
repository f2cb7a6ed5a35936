"""The jobs through the command line, on models a user makes with plain torch: a run without a
config file, compress with each flag (and nothing left behind when a step refuses), and export
of a compressed run's final stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from kdgui.cli.main import main

MODEL_PY = """
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 48)
        self.fc2 = nn.Linear(48, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.out(torch.relu(self.fc2(x)))


class ConvNet(nn.Module):
    # convolutions only, apart from the output layer
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.head(x.mean(dim=(2, 3)))
"""

FAST = ["--limit", "200"]


@pytest.fixture(scope="module")
def user_models(tmp_path_factory) -> dict[str, list[str]]:
    """State dicts saved with torch.save, next to the model.py that defines them."""
    import importlib.util

    folder = tmp_path_factory.mktemp("models")
    (folder / "model.py").write_text(MODEL_PY)
    spec = importlib.util.spec_from_file_location("user_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    torch.manual_seed(0)
    out = {}
    for name in ("MLP", "ConvNet"):
        torch.save(getattr(module, name)().state_dict(), folder / f"{name.lower()}.pt")
        out[name] = [str(folder / f"{name.lower()}.pt"), "--arch", f"{folder / 'model.py'}:{name}"]
    return out


def _stages(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["stages"]


def _layers(out: Path, stage: str) -> list[str]:
    folder = next(p for p in (out / "stages").iterdir() if p.name.endswith(stage))
    return [row["name"] for row in json.loads((folder / "metrics.json").read_text())["layers"]]


# ------------------------------------------------------------------------- run without a config


def test_run_without_a_config_file(user_models, tmp_path, capsys) -> None:
    teacher, _, arch = user_models["MLP"]
    out = tmp_path / "run"
    code = main(["run", "--teacher", teacher, "--arch", arch, "--data", "digits", "--out",
                 str(out), "--epochs", "1", "--quiet", "--set", "data.limit=240",
                 "--prune", "structured:0.5", "--export", "onnx"])
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["teacher"]["path"] == teacher and saved["teacher"]["arch"] == arch
    assert saved["data"]["spec"] == "digits" and saved["training"]["epochs"] == 1
    assert saved["name"] == "mlp" and saved["export"]["formats"] == ["onnx"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] and summary["teacher"]["params"] == 64 * 48 + 48 + 48 * 32 + 32 \
        + 32 * 10 + 10
    assert [e["format"] for e in summary["exports"] if e["ok"]] == ["onnx"]
    assert saved["compression"]["steps"][0]["method"] == "structured"
    assert [s["name"] for s in summary["stages"]] == ["before", "prune"]
    assert summary["stages"][1]["params"] < summary["student"]["params"]


def test_run_without_config_or_model_says_what_to_give(tmp_path, capsys) -> None:
    assert main(["run", "--out", str(tmp_path / "r"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--teacher FILE --data SPEC" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------- compress


def test_compress_structured_prune_and_finetune(user_models, tmp_path, capsys) -> None:
    out = tmp_path / "c"
    assert main(["compress", *user_models["ConvNet"], "--data", "digits", *FAST, "--out",
                 str(out), "--prune", "structured:0.5", "--finetune-epochs", "1"]) == 0
    before, pruned = _stages(out)
    assert pruned["name"] == "prune" and pruned["params"] < 0.5 * before["params"]
    assert "fine-tune epoch 1/1" in capsys.readouterr().out


def test_compress_lowrank_svd_factorises_the_linear_layers(user_models, tmp_path) -> None:
    out = tmp_path / "c"
    assert main(["compress", *user_models["MLP"], "--data", "digits", *FAST, "--out", str(out),
                 "--lowrank", "0.25", "--export", "pt2"]) == 0
    before, lowrank = _stages(out)
    assert lowrank["params"] < before["params"]
    layers = _layers(out, "lowrank")
    assert "fc1.0" in layers and "fc1.1" in layers and "out" in layers  # output kept whole
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exports"][0]["ok"] and summary["exports"][0]["stage"] == "lowrank"


def test_compress_lowrank_conv_on_chosen_layers(user_models, tmp_path) -> None:
    out = tmp_path / "c"
    assert main(["compress", *user_models["ConvNet"], "--data", "digits", *FAST, "--out",
                 str(out), "--lowrank", "0.25", "--lowrank-method", "conv",
                 "--lowrank-layers", "conv2,conv3"]) == 0
    layers = _layers(out, "lowrank")
    assert {"conv2.0", "conv2.1", "conv3.0", "conv3.1"} <= set(layers)
    assert "conv1" in layers and "conv1.0" not in layers  # not chosen: left whole
    before, lowrank = _stages(out)
    assert lowrank["params"] < before["params"]


def test_compress_lowrank_patterns_match_layer_names(user_models, tmp_path) -> None:
    out = tmp_path / "c"
    assert main(["compress", *user_models["MLP"], "--data", "digits", *FAST, "--out", str(out),
                 "--lowrank", "0.25", "--lowrank-layers", "fc*"]) == 0
    layers = _layers(out, "lowrank")
    assert {"fc1.0", "fc2.0"} <= set(layers) and "out.0" not in layers


def test_compress_dynamic_int8_with_export(user_models, tmp_path, capsys) -> None:
    out = tmp_path / "c"
    code = main(["compress", *user_models["MLP"], "--data", "digits", *FAST, "--out", str(out),
                 "--quantize", "dynamic-int8", "--export", "torchscript"])
    assert code == 0, capsys.readouterr().err
    stages = _stages(out)
    assert [s["name"] for s in stages] == ["before", "quantize"]
    assert stages[1]["size_bytes"] < stages[0]["size_bytes"]
    assert "exported torchscript" in capsys.readouterr().out


@pytest.mark.parametrize(("model", "flags", "expect"), [
    # the resnet18 case of the issue: the Linear-only SVD on a convolutional model
    ("ConvNet", ["--lowrank", "0.5"], "Linear"),
    ("ConvNet", ["--prune", "structured:0.5", "--lowrank", "0.5"], "Linear"),
    ("MLP", ["--lowrank", "0.5", "--lowrank-layers", "conv*"], "conv*"),
    ("MLP", ["--lowrank", "0.5", "--lowrank-method", "tucker"], "tucker"),
    ("MLP", ["--lowrank-method", "conv"], "--lowrank FRACTION"),
    ("ConvNet", ["--lowrank", "0.5", "--lowrank-layers", "conv1,head"], "conv1"),
    ("MLP", ["--quantize", "int3"], "int3"),
    ("MLP", ["--export", "tflite"], "tflite"),
])
def test_a_step_that_refuses_leaves_nothing_behind(user_models, tmp_path, capsys, model, flags,
                                                   expect) -> None:
    out = tmp_path / "c"
    code = main(["compress", *user_models[model], "--data", "digits", *FAST, "--out", str(out),
                 *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert expect in err, err
    assert not out.exists(), "a refused compression must not leave files"


def test_a_failure_after_writing_removes_only_what_the_job_wrote(user_models, tmp_path,
                                                                  monkeypatch, capsys) -> None:
    """Stages were written when the export fails with an internal error: they are removed,
    and a file the person had in the folder stays."""
    import kdgui.engine.jobs.compress_job as job

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")
        yield  # a generator, like the real one

    monkeypatch.setattr(job, "export_model_files", broken)
    out = tmp_path / "c"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["compress", *user_models["MLP"], "--data", "digits", *FAST, "--out", str(out),
                 "--prune", "unstructured:0.5"])
    assert code == 1 and "disk on fire" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_compress_refuses_a_folder_that_holds_a_result(user_models, tmp_path, capsys) -> None:
    out = tmp_path / "c"
    args = ["compress", *user_models["MLP"], "--data", "digits", *FAST, "--out", str(out),
            "--prune", "unstructured:0.5"]
    assert main(args) == 0
    first = (out / "summary.json").read_text()
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == first


# ----------------------------------------------------------------------------------- sensitivity


def test_sensitivity_of_a_user_model_as_json(user_models, tmp_path, capsys) -> None:
    out = tmp_path / "s.json"
    assert main(["sensitivity", *user_models["MLP"], "--data", "digits", *FAST, "--ratios",
                 "0.5,0.99", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed == saved
    assert saved["layers"] == ["fc1", "fc2", "out"] and saved["ratios"] == [0.5, 0.99]
    for row, drops in zip(saved["accuracy"], saved["accuracy_drop"], strict=True):
        assert drops == pytest.approx([saved["baseline"] - a for a in row])
    assert main(["sensitivity", *user_models["MLP"], "--data", "digits", "--layers", "fc9"]) == 2
    assert "fc9" in capsys.readouterr().err


# -------------------------------------------------------------------------------- export_run


CONFIG = """
name: exp
data:
  limit: 240
training:
  epochs: 1
  num_threads: 1
compression:
  steps:
    - {kind: prune, method: structured, params: {ratio: 0.5}}
    - {kind: prune, method: magnitude, params: {sparsity: 0.5}}
"""


def _counts(path: Path) -> tuple[int, int]:
    params = list(torch.export.load(str(path)).module().parameters())
    return sum(p.numel() for p in params), sum(int((p != 0).sum()) for p in params)


def test_export_writes_the_final_stage_of_a_compressed_run(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    final, student = summary["stages"][-1], summary["student"]
    capsys.readouterr()

    out = tmp_path / "export"
    assert main(["export", str(run), "--format", "pt2,onnx", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stage"] == "2_prune-magnitude"
    assert all(r["ok"] and r["verified"] and r["verify_ran"] for r in result["exports"])
    params, nonzero = _counts(out / "model.pt2")
    assert (params, nonzero) == (final["params"], final["nonzero_params"])
    assert params < student["params"] and nonzero < params  # not the uncompressed student
    assert (out / "model.onnx").stat().st_size > 0

    assert main(["export", str(run), "--format", "pt2", "--stage", "student", "--out",
                 str(tmp_path / "s"), "--no-verify", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    record = result["exports"][0]
    assert result["stage"] == "student" and not record["verified"] and not record["verify_ran"]
    assert _counts(tmp_path / "s" / "model.pt2")[0] == student["params"]

    assert main(["export", str(run), "--format", "pt2", "--stage", "9_nope"]) == 2
    assert "2_prune-magnitude" in capsys.readouterr().err


def test_sensitivity_of_a_runs_student_for_the_window(tmp_path) -> None:
    """The window's call: the distilled student of a run folder, on the run's data."""
    from kdgui.core.config_io import load_config
    from kdgui.core.errors import UserError
    from kdgui.engine.jobs import sensitivity_analysis

    run = tmp_path / "run"
    assert main(["demo", "--epochs", "1", "--quiet", "--set", "data.limit=240", "--out",
                 str(run)]) == 0
    config = load_config(run / "config.yaml")
    table = sensitivity_analysis(config, "student", [0.5, 0.99], run)
    assert table["model"] == "student" and table["source"].endswith("student.safetensors")
    assert len(table["accuracy"]) == len(table["layers"]) and table["ratios"] == [0.5, 0.99]
    with pytest.raises(UserError, match="no saved student"):
        sensitivity_analysis(config, "student", [0.5], tmp_path)


def test_python_api_compresses_and_exports_the_final_stage(user_models, tmp_path) -> None:
    import kdgui.api as kd

    model, _, arch = user_models["MLP"]
    out = tmp_path / "c"
    summary = kd.compress(model, "digits", out, arch=arch, limit=200,
                          prune="unstructured:0.75")
    final = summary["stages"][-1]
    assert final["nonzero_params"] < summary["stages"][0]["nonzero_params"]
    result = kd.export_run(out, ["pt2"], out_dir=tmp_path / "e")
    assert result["stage"] == "1_prune" and result["exports"][0]["verified"]
    params, nonzero = _counts(tmp_path / "e" / "model.pt2")
    assert (params, nonzero) == (final["params"], final["nonzero_params"])
    with pytest.raises(kd.UserError, match="already holds"):
        kd.compress(model, "digits", out, arch=arch, limit=200, prune="unstructured:0.5")


def test_stopping_a_compression_keeps_nothing(user_models, tmp_path) -> None:
    """'stop' sent into the job (the window's Stop, the CLI's Ctrl-C) after a stage was
    written: the job ends with RunFailed and its folder is gone."""
    from kdgui.core.events import ArtifactEvent, RunFailed
    from kdgui.engine.jobs import CompressRequest, compress

    model, _, arch = user_models["MLP"]
    out = tmp_path / "c"
    job = compress(CompressRequest(model=model, arch=arch, data="digits", limit=200,
                                   out_dir=out, prune="unstructured:0.5", lowrank=0.5))
    event = next(job)
    while not (isinstance(event, ArtifactEvent) and event.what == "stage"):
        event = next(job)
    assert (out / "stages").is_dir()
    rest = [job.send("stop"), *job]
    assert isinstance(rest[-1], RunFailed) and "stopped" in rest[-1].error["what"]
    assert not out.exists()


def test_leaving_a_finished_job_early_keeps_its_output(user_models, tmp_path) -> None:
    """A script may stop iterating at JobFinished: the complete result must stay."""
    from kdgui.core.events import JobFinished
    from kdgui.engine.jobs import CompressRequest, compress

    model, _, arch = user_models["MLP"]
    out = tmp_path / "c"
    job = compress(CompressRequest(model=model, arch=arch, data="digits", limit=200,
                                   out_dir=out, prune="unstructured:0.5"))
    for event in job:
        if isinstance(event, JobFinished):
            break
    job.close()
    assert (out / "summary.json").is_file() and (out / "stages" / "1_prune").is_dir()
