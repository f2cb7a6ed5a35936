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
    assert cfg.schema_version == 2  # schema 2 added distill.terms


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


# -- issue 13: strict reading, validation before work, escaped messages -------------------------

def _steps(*steps: dict) -> dict:
    return {"compression": {"steps": list(steps)}}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (_steps({"kind": "prune", "method": "magnitude", "params": {"sparsty": 0.5}}),
         "unknown parameter 'sparsty' of prune method 'magnitude'"),
        (_steps({"kind": "lowrank", "method": "tucker"}), "unknown lowrank method 'tucker'"),
        (_steps({"kind": "quantize", "method": "fake", "params": {"bits": True}}),
         "must be a number, not true"),
        (_steps({"kind": "quantize", "method": "dynamic-int8"},
                {"kind": "prune", "method": "magnitude"}), "after step 0"),
        (_steps({"kind": "prune", "method": "magnitude", "params": {"schedule": "gradual"}}),
         "finetune_epochs = 0"),
        (_steps({"kind": "quantize", "method": "static-int8", "finetune_epochs": 2}),
         "cannot fine-tune an int8 model"),
        ({"student": {"preset": "resnet-huge"}}, "unknown student preset 'resnet-huge'"),
        ({"data": {"spec": "imagenet:/x"}}, "Unknown dataset kind 'imagenet'"),
        ({"training": {"epochs": True}}, "must be a number, not true"),
        ({"training": {"batch_size": 64.5}}, "batch_size"),
        ({"training": {"lr": float("inf")}}, "must be a number (not NaN or infinity)"),
        ({"schema_version": True}, "schema_version True is not supported"),
        ({"name": "n" * 201}, "at most 200 characters"),
    ],
)
def test_the_schema_refuses_what_a_run_would_refuse(data, needle) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert needle in err.value.one_line()


def test_numbers_are_read_strictly_but_yaml_exponents_still_work(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  lr: 3e-3\n  epochs: 2\n")  # YAML 1.1 reads 3e-3 as a string
    cfg = load_config(path)
    assert cfg.training.lr == 0.003 and cfg.training.epochs == 2


def test_a_valid_pipeline_with_qat_last_is_accepted() -> None:
    cfg = config_from_dict(_steps(
        {"kind": "prune", "method": "magnitude", "params": {"schedule": "gradual"},
         "finetune_epochs": 1},
        {"kind": "quantize", "method": "qat-int8", "finetune_epochs": 1}))
    assert [s.method for s in cfg.compression.steps] == ["magnitude", "qat-int8"]


def test_duplicate_keys_name_key_and_line(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: a\ndistill:\n  alpha: 0.5\n  beta: 0.1\n  alpha: 0.6\n")
    with pytest.raises(ConfigError, match=r"'alpha' is given twice in one section \(line 5\)"):
        load_config(path)
    merged = tmp_path / "merge.yaml"  # a YAML merge key overriding a value is not a duplicate
    merged.write_text("base: &b {epochs: 1}\n")
    with pytest.raises(ConfigError, match="unknown key 'base'"):
        load_config(merged)


def test_self_referencing_alias_is_too_deep_not_endless(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  arch_kwargs: &a {x: *a}\n")
    with pytest.raises(ConfigError, match="too deeply nested"):
        load_config(path)


def test_override_errors_name_the_label_given() -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(demo_config(), ["distill.alpha=2"], {"distill.alpha": "--alpha"})
    assert err.value.one_line().startswith("--alpha 2 is invalid")


def test_messages_escape_control_characters() -> None:
    from kdgui.core.errors import UserError, printable, quote_bytes

    line = UserError("bad name '\x1b]0;owned\x07'", "Fix \x9b it", source="f\x1b.yaml").one_line()
    assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
    assert "\\x1b]0;owned\\x07" in line and line.startswith("f\\x1b.yaml: ")
    assert printable("tab\tand\nnewline") == "tab and newline"
    assert printable("\u202eevil") == "\\u202eevil"  # right-to-left override shown, not applied
    assert quote_bytes(b"\xff\xfeab\x1b", 40) == "??ab\\x1b"
    assert len(UserError("x" * 10_000).one_line()) <= 320
