"""torch.ao vs torchao / pt2e, per int8 method: latency on this CPU, in one process.

Imported by ``bench/bench_compression.py`` (section ``int8``); also runnable alone:

    .venv/bin/python bench/bench_int8_paths.py [--mnist ROOT] [--threads 1]

For each user-facing method — dynamic-int8, static-int8, qat-int8 — the model is quantized by
today's torch.ao path (what the registered method runs) and by each replacement PyTorch points
to (torchao ``quantize_`` in eager mode; the pt2e flow with the x86 inductor quantizer, compiled
by inductor with freezing), and every result is timed in the same rounds as float (quietest round
kept, as in ``paired_latency``). The MLP 784-1024-1024-10 is timed at batch 1 and 64; static
int8 also on a small CNN at batch 1 and 32, where the x86 inductor path has convolution kernels.
Printed: accuracy (MLP, MNIST split), latency per batch size, preparation time (compile included)
and which path is faster per method. Without torchao the replacement rows say how to install it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from kdgui.core.components.compression import DynamicInt8Params, StaticInt8Params
from kdgui.engine.compress import CompressionContext
from kdgui.engine.compress.finetune import make_finetune
from kdgui.engine.compress.quantize import alt_paths, dynamic, qat, static
from kdgui.engine.metrics import evaluate, measure_latency


def _latencies(models: dict[str, nn.Module], shape: tuple[int, ...], batches: tuple[int, ...],
               rounds: int = 4) -> dict[str, dict[int, float]]:
    """Per model and batch, the quietest round's median latency (models alternate in rounds)."""
    out: dict[str, dict[int, list[float]]] = {k: {b: [] for b in batches} for k in models}
    for _ in range(rounds):
        for name, model in models.items():
            for b in batches:
                out[name][b].append(measure_latency(model, shape, b, repeats=20,
                                                    max_seconds=2.0))
    return {k: {b: min(v) for b, v in d.items()} for k, d in out.items()}


def _timed(build: Callable[[], nn.Module]) -> tuple[nn.Module | None, float, str]:
    t0 = time.perf_counter()
    try:
        model = build()
    except Exception as exc:  # a path that fails is a row that says why, not a crashed bench
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc)[:90]}"
    return model, time.perf_counter() - t0, ""


def _accuracy(model: nn.Module, data) -> float | None:
    if data is None:
        return None
    with torch.no_grad():
        return 100.0 * evaluate(model, data)["accuracy"]


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


def bench_int8_paths(mlp: nn.Module, bundle) -> dict[str, dict[str, dict]]:
    """Print the comparison table; returns ``{method: {path: {latency, accuracy, ...}}}``."""
    version = alt_paths.torchao_version()
    print(f"\n== int8 paths: torch.ao (today) vs torchao / pt2e "
          f"(torchao {version or 'not installed'}) ==")
    if version is None:
        print(f"  torchao / pt2e rows skipped: {alt_paths.TORCHAO_HINT}")
    mlp = mlp.eval()
    shape = (1, 28, 28)
    example = bundle.val[0][0].unsqueeze(0)
    calib = [torch.stack([bundle.train[i][0] for i in range(s, s + 32)]) for s in (0, 32, 64, 96)]
    ctx = CompressionContext(input_shape=shape, calibration=bundle.train,
                             finetune=make_finetune(bundle.train, batch_size=64, lr=2e-4),
                             epochs=1)
    qat_finetune = make_finetune(bundle.train, batch_size=64, lr=2e-4)

    def run_qat_torch_ao() -> nn.Module:
        gen = qat.apply(copy.deepcopy(mlp), _QatParams(), ctx)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return stop.value

    def qat_train(prepared: nn.Module) -> None:
        for _ in qat_finetune(prepared, 1):
            pass

    builds: dict[str, dict[str, Callable[[], nn.Module]]] = {
        "dynamic-int8": {
            "torch.ao quantize_dynamic": lambda: dynamic.apply(
                copy.deepcopy(mlp), DynamicInt8Params(), ctx)},
        "static-int8": {
            "torch.ao FX (x86)": lambda: static.apply(
                copy.deepcopy(mlp), StaticInt8Params(calibration_samples=128), ctx)},
        "qat-int8": {"torch.ao FX QAT, 1 epoch": run_qat_torch_ao},
    }
    if version is not None:
        builds["dynamic-int8"]["torchao quantize_ (eager)"] = (
            lambda: alt_paths.torchao_dynamic_int8(mlp))
        builds["dynamic-int8"]["pt2e x86-inductor dynamic"] = (
            lambda: alt_paths.pt2e_int8(mlp, example, dynamic=True))
        builds["static-int8"]["pt2e x86-inductor"] = (
            lambda: alt_paths.pt2e_int8(mlp, example, calib))
        builds["qat-int8"]["pt2e x86-inductor QAT, 1 epoch"] = (
            lambda: alt_paths.pt2e_int8(mlp, example, qat_train=qat_train))
    results: dict[str, dict[str, dict]] = {}
    for method, paths in builds.items():
        built = {name: _timed(fn) for name, fn in paths.items()}
        ok = {name: m for name, (m, _, _) in built.items() if m is not None}
        lat = _latencies({"float": mlp, **ok}, shape, (1, 64))
        results[method] = {}
        print(f"  {method}: MLP 784-1024-1024-10 (float: b1 {lat['float'][1]:.3f} ms, "
              f"b64 {lat['float'][64]:.3f} ms, accuracy {_accuracy(mlp, bundle.val):.2f}%)")
        for name, (model, took, error) in built.items():
            if model is None:
                print(f"    {name:34s} failed: {error}")
                continue
            row = {"b1": lat[name][1], "b64": lat[name][64], "prepare_s": took,
                   "accuracy": _accuracy(model, bundle.val)}
            results[method][name] = row
            print(f"    {name:34s} b1 {row['b1']:7.3f} ms  b64 {row['b64']:7.3f} ms  "
                  f"accuracy {row['accuracy']:.2f}%  prepared in {took:5.1f} s")
        _verdict(method, results[method], "b64")
    results["static-int8 (CNN)"] = _static_cnn(version is not None)
    return results


class _QatParams:
    backend = "x86"


def _static_cnn(with_pt2e: bool) -> dict[str, dict]:
    cnn, shape = small_cnn(), (3, 32, 32)
    x = torch.randn(32, *shape, generator=torch.Generator().manual_seed(0))
    from torch.utils.data import TensorDataset

    ctx = CompressionContext(input_shape=shape, calibration=TensorDataset(x, torch.zeros(32)))
    paths = {"torch.ao FX (x86)": lambda: static.apply(
        copy.deepcopy(cnn), StaticInt8Params(calibration_samples=32), ctx)}
    if with_pt2e:
        paths["pt2e x86-inductor"] = lambda: alt_paths.pt2e_int8(cnn, x[:1], [x])
    built = {name: _timed(fn) for name, fn in paths.items()}
    ok = {name: m for name, (m, _, _) in built.items() if m is not None}
    lat = _latencies({"float": cnn, **ok}, shape, (1, 32), rounds=3)
    print(f"  static-int8: small CNN 3×32×32 (float: b1 {lat['float'][1]:.3f} ms, "
          f"b32 {lat['float'][32]:.3f} ms)")
    rows = {}
    for name, (model, took, error) in built.items():
        if model is None:
            print(f"    {name:34s} failed: {error}")
            continue
        with torch.no_grad():
            diff = float((model(x) - cnn(x)).abs().max())
        rows[name] = {"b1": lat[name][1], "b32": lat[name][32], "prepare_s": took}
        print(f"    {name:34s} b1 {lat[name][1]:7.3f} ms  b32 {lat[name][32]:7.3f} ms  "
              f"max |Δ output| {diff:.4f}  prepared in {took:5.1f} s")
    _verdict("static-int8 (CNN)", rows, "b32")
    return rows


def _verdict(method: str, rows: dict[str, dict], key: str) -> None:
    ours = next((r for n, r in rows.items() if n.startswith("torch.ao")), None)
    others = {n: r for n, r in rows.items() if not n.startswith("torch.ao")}
    if ours is None or not others:
        return
    name, best = min(others.items(), key=lambda kv: kv[1][key])
    ratio = best[key] / ours[key]
    faster = "torch.ao" if ratio >= 1 else name
    print(f"    → faster at {key}: {faster} (best replacement, {name}: {ratio:.2f}× "
          "torch.ao's latency)")


def main() -> int:
    import argparse

    from kdgui.core.config import DataConfig
    from kdgui.engine.data.load import load_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="/work/shared/data")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_data(DataConfig(spec=f"mnist:{args.mnist}", split="ordered",
                                  val_fraction=0.2))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                          nn.ReLU(), nn.Linear(1024, 10))
    for _ in make_finetune(bundle.train, batch_size=128, lr=1e-3)(model, 3):
        pass
    bench_int8_paths(model, bundle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
