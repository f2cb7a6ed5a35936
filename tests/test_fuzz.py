"""Property-based fuzzing of what users hand the CLI: config documents and model files.

For any input, ``kdgui`` (called in-process through ``main``) must end with exit code 0 or 2;
on 2 print exactly one line to stderr; never print a traceback or a raw terminal escape; write
nothing outside the output folder it was given, and nothing half-written (no ``*.tmp``). A
config that ``config --check`` refuses must be refused by ``run`` too, with the same line and no
run folder (issue 13: everything a run rejects is rejected before work).

Inputs that once broke one of these rules are kept under ``tests/corpus/`` and replayed by the
plain tests at the bottom, so a regression shows up without hypothesis finding it again. The
fuzzers stay small (tens of examples, no example database) to keep the suite fast on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdgui.cli.main import main

CORPUS = Path(__file__).parent / "corpus"
FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def call(args: list[str]) -> Outcome:
    """``main(args)`` with stdout and stderr captured (a real user sees exactly these)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return Outcome(code, out.getvalue(), err.getvalue())


def check_outcome(result: Outcome) -> None:
    """The rules every CLI answer to bad input follows."""
    assert result.code in (0, 2), (result.code, result.err)
    text = result.out + result.err
    assert "Traceback" not in text and "internal error" not in text, result.err
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(result.err)
    assert "weights_only=False" not in text.replace(" ", "")
    if result.code == 2:
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kdgui: error: "), result.err


@contextlib.contextmanager
def workspace():
    """A fresh working folder per example (hypothesis reuses the test's tmp_path)."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="kdgui-fuzz-") as folder:
        os.chdir(folder)
        try:
            yield Path(folder).resolve()
        finally:
            os.chdir(previous)


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# -- config documents ------------------------------------------------------------------------

SECTIONS = {
    "data": ["spec", "download", "val_fraction", "split", "split_seed", "limit", "image_size"],
    "teacher": ["path", "arch", "num_classes", "trust", "arch_kwargs", "train_epochs"],
    "student": ["preset", "width", "derive_from_teacher", "depth"],
    "distill": ["alpha", "beta", "gamma", "temperature", "label_smoothing"],
    "training": ["epochs", "batch_size", "optimizer", "lr", "seed", "log_every", "num_threads"],
    "export": ["formats", "verify"],
}
WORDS = ["digits", "mnist:/nowhere", "cnn-small", "nope", "magnitude", "prune", "quantize",
         "fake", "sparsity", "sparsty", "bits", "demo", "preset:cnn-tiny", "onnx", "../../x",
         "\x1b]0;t\x07", "", "nan", ".inf", "1e400", "true"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS),
    st.text(max_size=30),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from([*WORDS, "x", "y"]), inner,
                                                 max_size=4)), max_leaves=12)


@st.composite
def step(draw) -> dict:
    return {
        "kind": draw(st.sampled_from(["prune", "quantize", "lowrank", "finetune", "nope"])),
        "method": draw(st.sampled_from(["magnitude", "structured", "fake", "dynamic-int8",
                                        "qat-int8", "svd", "conv", "bogus"])),
        "params": draw(st.dictionaries(st.sampled_from(
            ["sparsity", "sparsty", "bits", "rank", "schedule", "ratio"]), values, max_size=2)),
        "finetune_epochs": draw(st.one_of(st.integers(-1, 3), values)),
    }


@st.composite
def config_doc(draw) -> dict:
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), unique=True, max_size=4)):
        keys = draw(st.lists(st.sampled_from([*SECTIONS[section], "typo"]), unique=True,
                             max_size=3))
        doc[section] = {k: draw(values) for k in keys}
    if draw(st.booleans()):
        doc["compression"] = {"steps": draw(st.lists(step(), max_size=3))}
    if draw(st.booleans()):
        doc["name"] = draw(st.one_of(st.sampled_from(WORDS), st.text(max_size=300)))
    if draw(st.integers(0, 9)) == 0:
        doc["schema_version"] = draw(values)
    return doc


def render(doc: dict, fmt: str, mutation: int, cut: float) -> str:
    """The document as a user might have typed it: JSON or YAML, sometimes damaged."""
    if fmt == "json":
        text = json.dumps(doc, indent=1, allow_nan=True)
    else:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if mutation == 1:  # a key written twice
        lines = text.splitlines()
        keyed = [line for line in lines if ":" in line]
        if keyed:
            lines.append(keyed[len(keyed) // 2])
        text = "\n".join(lines)
    elif mutation == 2:  # cut off (a save that did not finish)
        text = text[: int(len(text) * cut)]
    elif mutation == 3:  # deeply nested
        text = ("[" * 3000 + "]" * 3000) if fmt == "json" else "name: " + "[" * 3000
    return text


def check_config_text(text: str | bytes, suffix: str) -> None:
    with workspace() as work:
        path = work / f"config{suffix}"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = files_in(work)
        checked = call(["config", "--check", str(path)])
        check_outcome(checked)
        if checked.code == 2:
            ran = call(["run", str(path), "--quiet", "--out", str(work / "out")])
            check_outcome(ran)
            assert ran.code == 2 and ran.err == checked.err, (checked.err, ran.err)
        else:
            assert checked.out.splitlines()[0] == f"{path}: valid"  # (a migration note may follow)
        assert files_in(work) == before, "a refused or checked config wrote files"


@FUZZ
@given(doc=config_doc(), fmt=st.sampled_from(["yaml", "json"]), mutation=st.integers(0, 5),
       cut=st.floats(0.0, 1.0))
def test_fuzz_config_documents(doc: dict, fmt: str, mutation: int, cut: float) -> None:
    text = render(doc, fmt, mutation, cut)
    check_config_text(text, ".json" if fmt == "json" else ".yaml")


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
       suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_fuzz_config_bytes(data: bytes, suffix: str) -> None:
    check_config_text(data, suffix)


# -- model files -----------------------------------------------------------------------------

MAGIC = [
    b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x08\x07\x12\x04", b"{", b"\x1b]0;",
    b"\x20\x00\x00\x00\x00\x00\x00\x00{\"w\":", b"<!DOCTYPE html>", b"\x93NUMPY", b"\x00" * 8,
]


def check_model_bytes(data: bytes, suffix: str) -> None:
    with workspace() as work:
        path = work / f"model{suffix}"
        path.write_bytes(data)
        before = files_in(work)
        check_outcome(call(["inspect", str(path)]))
        out = work / "out"
        ran = call(["demo", "--teacher", str(path), "--epochs", "1", "--quiet", "--out",
                    str(out)])
        check_outcome(ran)
        if ran.code == 2:
            assert not out.exists(), "a refused teacher left a run folder"
        new = files_in(work) - before
        assert all(p == "out" or p.startswith("out/") for p in new), new
        assert not list(work.rglob("*.tmp")), "something was left half-written"


@FUZZ
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=400),
       suffix=st.sampled_from([".pt", ".pth", ".onnx", ".safetensors", ".pt2", ".ts", ".bin"]))
def test_fuzz_model_file_bytes(prefix: bytes, body: bytes, suffix: str) -> None:
    check_model_bytes(prefix + body, suffix)


# -- the corpus: inputs that once failed, replayed on every run --------------------------------

def _corpus(kind: str) -> list[Path]:
    folder = CORPUS / kind
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


@pytest.mark.parametrize("path", _corpus("configs"), ids=lambda p: p.name)
def test_corpus_configs(path: Path) -> None:
    check_config_text(path.read_bytes(), path.suffix if path.suffix != ".txt" else ".yaml")


@pytest.mark.parametrize("path", _corpus("models"), ids=lambda p: p.name)
def test_corpus_models(path: Path) -> None:
    suffix = Path(path.stem).suffix or ".pt"  # corpus names end in e.g. ".onnx.bin"
    check_model_bytes(path.read_bytes(), suffix)


def test_the_corpus_is_not_empty() -> None:
    assert len(_corpus("configs")) >= 10 and len(_corpus("models")) >= 5


# -- --set overrides ---------------------------------------------------------------------------

KEYS = [f"{section}.{key}" for section, keys in SECTIONS.items() for key in keys] + [
    "name", "training", "compression.steps", "distill.feature.distance", "x.y.z", "", ".",
    "training..epochs", "data.spec.x"]


@FUZZ
@given(key=st.sampled_from(KEYS), value=st.one_of(
    st.sampled_from(WORDS), st.text(max_size=40), st.integers().map(str),
    st.just("9" * 5000), st.just("[" * 3000), st.just("{a: 1, a: 2}"), st.just("&a [*a]")))
def test_fuzz_set_overrides(key: str, value: str) -> None:
    """Every ``--set KEY=VALUE`` gives a valid config or one ConfigError, nothing else."""
    from kdgui.core.config import ExperimentConfig, demo_config
    from kdgui.core.config_io import apply_overrides
    from kdgui.core.errors import ConfigError

    try:
        result = apply_overrides(demo_config(), [f"{key}={value}"], {key: "--flag"})
    except ConfigError as exc:
        line = exc.one_line()
        assert "\n" not in line and "\x1b" not in line and len(line) < 700
    else:
        assert isinstance(result, ExperimentConfig)
