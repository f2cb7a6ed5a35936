"""training.device takes cuda:N: the schema checks the name, the CLI passes it, the engine
refuses a GPU this machine lacks in one line."""

from __future__ import annotations

import argparse

import pytest
import torch

from kdgui.cli.flags import add_config_flags, apply_config_flags
from kdgui.core.config import ExperimentConfig, TrainingConfig
from kdgui.core.errors import ConfigError
from kdgui.core.params import describe
from kdgui.engine import jobs
from kdgui.engine.device import pick_device


@pytest.mark.parametrize(("given", "kept"), [("cuda:0", "cuda:0"), ("cuda:12", "cuda:12"),
                                             ("cuda:01", "cuda:1"), ("auto", "auto"),
                                             ("CPU", "cpu"), ("cuda", "cuda"), ("mps", "mps")])
def test_schema_accepts_device_names(given: str, kept: str) -> None:
    assert TrainingConfig(device=given).device == kept


@pytest.mark.parametrize("bad", ["cuda:-1", "cuda:x", "cuda:", "gpu", "cuda:0:1", 3])
def test_schema_refuses_other_names_in_one_line(bad) -> None:
    with pytest.raises(ValueError) as info:
        ExperimentConfig.model_validate({"training": {"device": bad}})
    msg = str(info.value).splitlines()
    assert msg[1] == "training.device"
    assert f"unknown device {bad!r} (a GPU is cuda:N with N = 0, 1, ...)" in msg[2]


def test_device_is_an_open_choice_for_the_cli_and_the_window() -> None:
    spec = next(s for s in describe(TrainingConfig) if s.name == "device")
    assert spec.kind == "choice" and spec.choices == ("auto", "cpu", "cuda", "mps")
    assert spec.extra["choices_from"] == "devices"
    assert spec.range_text() == "one of auto, cpu, cuda, mps or cuda:N (GPU number N, from 0)"
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--device", "cuda:1"])
    assert apply_config_flags(ExperimentConfig(), args).training.device == "cuda:1"
    with pytest.raises(ConfigError) as info:
        apply_config_flags(ExperimentConfig(), parser.parse_args(["--device", "cuda:x"]))
    assert str(info.value) == (
        "--device 'cuda:x' is invalid: unknown device 'cuda:x' (a GPU is cuda:N with N = 0, 1, "
        "...). Use a value with allowed: one of auto, cpu, cuda, mps or cuda:N (GPU number N, "
        "from 0).")


def test_engine_refuses_a_gpu_this_machine_lacks_in_one_line() -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ConfigError) as info:
        pick_device(f"cuda:{count + 2}")
    text = str(info.value)
    assert "\n" not in text
    if count == 0:
        assert text == (f"training.device = 'cuda:{count + 2}' but this machine has no CUDA GPU. "
                        "Use training.device: auto or cpu.")
    else:
        assert f"has {count} CUDA GPU" in text and f"cuda:0 … cuda:{count - 1}" in text
        assert pick_device("cuda:0") == torch.device("cuda", 0)


def test_available_devices_lists_cpu_and_each_gpu() -> None:
    found = jobs.available_devices()
    names = [d["device"] for d in found]
    assert names[0] == "cpu"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert [n for n in names if n.startswith("cuda:")] == [f"cuda:{i}" for i in range(count)]
    for d in found:
        assert d["label"].startswith(d["device"])
    assert jobs.warm_up()["devices"] == found


def test_cli_run_on_an_absent_gpu_exits_2_in_one_line_with_no_folder(tmp_path, capsys) -> None:
    from kdgui.cli.main import main

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out = tmp_path / "r"
    assert main(["demo", "--epochs", "1", "--quiet", "--device", f"cuda:{count + 1}",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'cuda:{count + 1}' but this machine has" in err
    assert not out.exists()
