"""bench/bench_kd_methods.py: its arguments, the configs it builds, and its one-line failures.

The benchmark itself trains dozens of runs; here its runner is replaced by one that records the
configs (each validated by the config schema), on a tiny fake CIFAR-100 folder.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from kdgui.core.config_io import config_from_dict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_kd_methods",
                                                  ROOT / "bench" / "bench_kd_methods.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_kd_methods"] = module
    spec.loader.exec_module(module)
    return module


def fake_cifar100(root: Path, n: int = 200) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = {"data": rng.integers(0, 255, (n, 3 * 32 * 32), dtype=np.uint8),
            "fine_labels": [i % 100 for i in range(n)]}
    (folder / "train").write_bytes(pickle.dumps(data))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return root


def test_the_published_protocol_builds_the_authors_settings(bench, tmp_path, capsys) -> None:
    root = fake_cifar100(tmp_path / "data")
    seen: list[dict] = []

    def runner(cfg, out):
        seen.append(cfg)
        return 50.0 + len(seen), 0.0

    code = bench.main(["--data", f"cifar100:{root}", "--pair", "resnet56-resnet20", "--epochs",
                       "1", "--seeds", "2", "--methods", "DKD,RKD", "--teacher", "t.safetensors"],
                      runner=runner)
    assert code == 0
    assert [c["name"] for c in seen] == ["scratch-0", "scratch-1", "KD-0", "KD-1", "DKD-0",
                                         "DKD-1", "RKD-0", "RKD-1"]
    for cfg in seen:
        checked = config_from_dict(cfg)  # every config the bench builds is a valid config
        t = checked.training
        assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.batch_size, t.schedule) == (
            "sgd", 0.05, 0.9, 5e-4, 64, "multistep")
        assert t.lr_milestones == pytest.approx([150 / 240, 180 / 240, 210 / 240])
        assert t.epochs == 1 and checked.data.augment and checked.data.labelled_count is None
        assert checked.student.preset == "resnet20"
        assert checked.teacher.path == "t.safetensors"
    kd_terms = config_from_dict(seen[2]).distill.terms
    assert [(t.name, t.weight) for t in kd_terms] == [("hard", 0.1), ("soft", 0.9)]
    rkd = config_from_dict(seen[6]).distill.terms[1]
    assert rkd.name == "rkd" and rkd.pairs == [("layers.57", "layers.21")]  # penultimate layers
    printed = capsys.readouterr().out
    # mean ± std over the two seeds, beside the published numbers of the pair
    assert "| scratch | 51.50 ± 0.71 |  | 69.06 |" in printed
    assert "| DKD | 55.50 ± 0.71 | +4.00 | 71.97 |" in printed


@pytest.mark.parametrize(("args", "words"), [
    (["--data", "cifar100:{tmp}/nowhere"], ["nowhere does not exist", "cifar100:ROOT"]),
    (["--data", "cifar100:{tmp}"], ["No CIFAR-100 files in", "cifar-100-python"]),
    (["--pair", "resnet32x4"], ["--pair resnet32x4 is not TEACHER-STUDENT"]),
    (["--pair", "resnet32x4-resnet9"], ["unknown student preset 'resnet9'"]),
])
def test_bad_arguments_are_one_line_and_exit_code_2(bench, tmp_path, capsys, args, words):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] != "--data":
        args = ["--data", f"cifar100:{fake_cifar100(tmp_path / 'data')}", *args]
    assert bench.main(args, runner=lambda cfg, out: pytest.fail("no run should start")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
