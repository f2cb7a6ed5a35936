"""The experiment schema: defaults, round trips, and errors that name field, value and range."""

from __future__ import annotations

import json

import pytest
import yaml

from kdgui.core.config import DistillConfig, ExperimentConfig, demo_config
from kdgui.core.config_io import (
    apply_overrides,
    config_from_dict,
    example_yaml,
    load_config,
    save_config,
)
from kdgui.core.errors import ConfigError
from kdgui.core.params import describe


def test_defaults_are_the_offline_demo() -> None:
    cfg = demo_config()
    assert cfg.data.spec == "digits"
    assert cfg.teacher.path == "demo"
    assert cfg.schema_version == 1


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path, suffix) -> None:
    cfg = ExperimentConfig(name="x")
    cfg.distill.temperature = 8.0
    cfg.student.spec = {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}]}
    path = tmp_path / f"c{suffix}"
    save_config(cfg, path)
    assert load_config(path) == cfg
    if suffix == ".json":
        json.loads(path.read_text())


def test_example_config_is_valid_and_annotated() -> None:
    text = example_yaml()
    assert "# Softmax temperature" in text
    assert config_from_dict(yaml.safe_load(text)).name == "example"


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"distill": {"temperature": 0}}, ["distill.temperature", "0", "> 0"]),
        ({"distill": {"temperature": -1}}, ["distill.temperature", "-1"]),
        ({"distill": {"alpha": 0.6, "beta": 0.3, "gamma": 0.2}}, ["alpha + beta + gamma", "1.1"]),
        ({"distill": {"alpha": 1.5}}, ["distill.alpha", "1.5", "≤ 1"]),
        ({"training": {"lrr": 0.1}}, ["unknown key 'training.lrr'", "lr"]),
        ({"colour": "red"}, ["unknown key 'colour'", "distill"]),
        ({"training": {"optimizer": "rmsprop"}}, ["training.optimizer", "rmsprop", "sgd"]),
        ({"schema_version": 7}, ["schema_version"]),
    ],
)
def test_errors_name_field_value_and_range(data, needles) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    text = info.value.one_line()
    for needle in needles:
        assert needle in text, text
    assert "\n" not in text


def test_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_config(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("distill: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_yaml_tags_cannot_run_code(tmp_path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError):
        load_config(evil)
    assert not (tmp_path / "pwned").exists()


def test_overrides_apply_and_validate() -> None:
    cfg = apply_overrides(demo_config(), ["distill.temperature=8", "training.epochs=2"])
    assert cfg.distill.temperature == 8.0 and cfg.training.epochs == 2
    with pytest.raises(ConfigError, match=r"distill\.temperature"):
        apply_overrides(cfg, ["distill.temperature=-3"])
    with pytest.raises(ConfigError, match=r"KEY=VALUE"):
        apply_overrides(cfg, ["distill.temperature"])


def test_hard_weight_is_the_rest() -> None:
    d = DistillConfig(alpha=0.5, beta=0.2, gamma=0.1)
    assert d.hard_weight == pytest.approx(0.2)


def test_param_specs_carry_ranges_units_and_help() -> None:
    specs = {s.name: s for s in describe(DistillConfig)}
    t = specs["temperature"]
    assert t.kind == "float" and t.minimum == 0 and t.exclusive_min and t.maximum == 100
    assert "temperature" in t.help.lower() and t.step == 0.5
    assert specs["alpha"].formula
