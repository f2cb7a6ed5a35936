"""bench/bench_gpu.py without a GPU: one line and exit 0, or (--allow-cpu) a tiny CPU smoke of
the same code paths (the engine's TrainLoop, the plain loop, the cache, the ratios, DDP skipped)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(bench, no_gpu, capsys) -> None:
    assert bench.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("bench_gpu: no CUDA GPU here"), out


def test_the_cpu_smoke_runs_the_same_code_paths(bench, no_gpu, capsys) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier on a busy 2-core machine
    try:
        assert bench.main(["--allow-cpu", "--pairs", "cifar"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for variant in ("plain fp32 online", "engine fp32 online", "engine fp32 cached"):
        assert f"  {variant} " in out and "samples/s" in out, out
    assert "engine/plain (fp32, online)" in out and "(target >= 0.95)" in out
    assert "cached/online (engine, fp32)" in out and "(target >= 3.0)" in out
    assert "DDP scaling: skipped (needs 2 or more GPUs; 0 here)" in out


def test_ratios_print_each_target_and_whether_it_is_met(bench) -> None:
    sec = {"plain fp32 online": 1.0, "engine fp32 online": 1.0, "engine fp32 cached": 0.5,
           "plain amp online": 0.5, "engine amp online": 0.5, "engine amp cached": 0.1,
           "engine fp32 online compiled": 0.8}
    lines = bench.ratios(sec, compiled=True)
    text = "\n".join(lines)
    assert "engine/plain (fp32, online)" in text
    cached = next(line for line in lines if line.strip().startswith("cached/online (engine, fp32)"))
    assert "2.00x" in cached and cached.endswith("BELOW")  # 2x < the 3x target
    amp = next(line for line in lines if line.strip().startswith("amp/fp32 (engine"))
    assert "2.00x" in amp and amp.endswith("ok")
    assert any("compiled/eager" in line and "1.25x" in line for line in lines)
