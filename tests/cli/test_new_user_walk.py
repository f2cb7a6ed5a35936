"""Regressions found by trying the wave's features as a new user would (CLI and config files).

Each test is one thing that broke or misled, checked in-process through ``kdgui.cli.main.main``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kdgui.cli.main import main
from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import CompatibilityError

CRD_TERMS = {"terms": [{"name": "hard"}, {"name": "crd", "weight": 0.8}]}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_crd_in_several_processes_is_refused_at_config_check(tmp_path: Path, capsys) -> None:
    """CRD's memory bank under DDP kept only rank 0's state: refused, in one line naming the
    term and the remedy, by ``config --check`` and by ``run`` with ``--nproc`` and ``--term``."""
    with pytest.raises(ValueError, match="crd"):
        ExperimentConfig.model_validate({"distill": CRD_TERMS, "training": {"processes": 2}})
    ExperimentConfig.model_validate({"distill": CRD_TERMS})  # one process: fine
    ExperimentConfig.model_validate({"training": {"processes": 2}})  # no CRD: fine

    config = tmp_path / "crd2.yaml"
    config.write_text("distill:\n  terms: [{name: hard}, {name: crd, weight: 0.8}]\n"
                      "training: {processes: 2}\n", encoding="utf-8")
    assert main(["config", "--check", str(config)]) != 0
    err = _one_error_line(capsys)
    assert "crd2.yaml: distill term 'crd' keeps state per training sample" in err
    assert "--nproc 1" in err and "config:" not in err

    assert main(["run", "--teacher", "demo", "--data", "digits", "--out", str(tmp_path / "r"),
                 "--term", "hard", "--term", "crd:weight=0.8", "--nproc", "2"]) != 0
    err = _one_error_line(capsys)
    assert err.startswith("kdgui: error: distill term 'crd'"), err  # not '--set: config: ...'
    assert not (tmp_path / "r").exists()


def test_feature_terms_on_a_pt2_teacher_name_the_terms_remedy() -> None:
    """The refusal of feature-map losses on a frozen teacher told a terms-list user to 'set beta
    and gamma to 0', which a terms config does not have."""
    torch = pytest.importorskip("torch")
    from kdgui.engine.distill.taps import check_hookable
    from kdgui.engine.models.frozen import FrozenTeacher

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    scripted = torch.jit.script(net)
    with pytest.raises(CompatibilityError) as info:
        check_hookable(FrozenTeacher(scripted, "torchscript", "TorchScript"), "teacher")
    assert "no feature-map terms" in info.value.one_line()


def test_a_kdc_file_is_a_model_file_inspect_and_compress_read(tmp_path: Path, capsys) -> None:
    """``model.kdc`` (the deepc export) could not be inspected or given as a model: the model
    loader did not know the format it was written in."""
    torch = pytest.importorskip("torch")
    from kdgui.core.config import ModelRef
    from kdgui.engine.export import export_model
    from kdgui.engine.models.arch import build_arch
    from kdgui.engine.models.loading import load_model

    model = build_arch("preset:mlp-tiny", num_classes=10, input_shape=(1, 8, 8)).module.eval()
    path = tmp_path / "model.kdc"
    export_model(model, "deepc", path, torch.randn(2, 1, 8, 8))
    loaded = load_model(ModelRef(path=str(path)))
    assert loaded.format == "deepc" and not loaded.module.training
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(loaded.module(x), model(x))

    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format: deepc" in out and "params: " in out


def test_unlabelled_folder_with_a_state_dict_teacher_takes_classes_from_it(tmp_path: Path) -> None:
    """A folder of images only (0 classes) built the teacher's architecture with 0 outputs, so
    its own state_dict did not fit ('set num_classes to 4'); the classes come from the teacher."""
    torch = pytest.importorskip("torch")
    from PIL import Image

    from kdgui.engine.session.prepare import prepare

    images = tmp_path / "unlab"
    images.mkdir()
    for i in range(10):
        Image.new("RGB", (8, 8), (20 * i, 0, 0)).save(images / f"{i}.png")
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Sequential):\n"
        "    def __init__(self, num_classes=3):\n"
        "        super().__init__(torch.nn.Flatten(), torch.nn.Linear(192, num_classes))\n",
        encoding="utf-8")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
    torch.save(net.state_dict(), tmp_path / "t.pt")
    config = ExperimentConfig.model_validate({
        "data": {"spec": f"folder:{images}"},
        "teacher": {"path": str(tmp_path / "t.pt"), "arch": f"{tmp_path / 'net.py'}:Net"},
        "student": {"preset": "mlp-tiny"}})
    prepared = prepare(config)
    assert prepared.num_classes == 3


def test_a_bad_term_flag_is_named_as_the_flag_typed(capsys) -> None:
    """'--term crd:foo=1' was reported as '--set: distill.terms.0: ...' (a flag not typed)."""
    assert main(["run", "--teacher", "demo", "--data", "digits", "--out", "r",
                 "--term", "hard", "--term", "crd:foo=1"]) != 0
    err = _one_error_line(capsys)
    assert err.startswith("kdgui: error: --term: unknown parameter 'foo' of loss 'crd'"), err
    assert "--set" not in err


def test_exporting_a_pt2_stage_to_onnx_warns_nothing(tmp_path: Path) -> None:
    """'kdgui export RUN --format onnx' of a .pt2 stage printed torch.onnx's 'Exporting a model
    while it is in training mode' (a .pt2 module refuses eval(); its graph is eval already)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import warnings

    from kdgui.core.config import ModelRef
    from kdgui.engine.export import export_model
    from kdgui.engine.models.loading import load_model

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    x = torch.randn(2, 1, 4, 4)
    torch.export.save(torch.export.export(net, (x,)), tmp_path / "m.pt2")
    module = load_model(ModelRef(path=str(tmp_path / "m.pt2"))).module
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_model(module, "onnx", tmp_path / "m.onnx", x)
    assert result.verified
    assert not [w for w in caught if "training mode" in str(w.message)]
