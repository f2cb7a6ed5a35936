"""Compression benchmark: measured before/after ratios on this machine's CPU, in one run.

    .venv/bin/python bench/bench_compression.py [--mnist ROOT] [--skip-deep]

Checks (from the compression issue), each printed with PASS/FAIL:
1. structured pruning (50% of channels) of torchvision resnet18(num_classes=10) at 3×32×32:
   latency ratio at batch 32 ≥ 1.7, params ≤ 0.3×; mobilenet_v2 the same way, without errors;
2. dynamic int8 of an MLP 784-1024-1024-10 trained briefly on MNIST (8,000/2,000 ordered split
   of the t10k files): latency ratio ≥ 1.5 at batch 64, size ≤ 0.3×, accuracy change ≤ 0.5 point;
3. truncated SVD of that MLP's hidden layers at 25% rank: latency ratio ≥ 1.5 at batch 64;
4. Deep Compression: MLP 784-300-100-10 pruned gradually to ≥ 90% sparsity with fine-tuning,
   then int8 (dynamic): zip-compressed file ≥ 20× smaller than the float model's, accuracy
   within 1.0 point.
5. int8 paths (``bench/bench_int8_paths.py``): per method (dynamic-int8, static-int8, qat-int8)
   the latency of today's torch.ao path beside torchao ``quantize_`` and the pt2e flow with the
   x86 inductor quantizer (compiled), printed with the faster path (no PASS/FAIL: it is what the
   choice in the methods page rests on). Skip with ``--skip-int8-paths``.
Latency is the median of timed runs after warm-up (``kdgui.engine.metrics.measure_latency``),
the float and compressed models timed alternately in rounds, the quietest round of each kept.
Exit code 1 if any check fails.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time

import torch
from torch import nn

from kdgui.core.components.compression import (
    DynamicInt8Params,
    LowRankParams,
    MagnitudePruneParams,
    StructuredPruneParams,
)
from kdgui.core.config import DataConfig
from kdgui.engine.compress import CompressionContext
from kdgui.engine.compress.finetune import make_finetune, steps_per_epoch
from kdgui.engine.compress.lowrank import svd
from kdgui.engine.compress.prune import structured, unstructured
from kdgui.engine.compress.quantize import dynamic
from kdgui.engine.data.load import load_data
from kdgui.engine.metrics import (
    count_nonzero,
    count_params,
    evaluate,
    measure_latency,
    model_size_bytes,
)

RESULTS: list[tuple[str, bool]] = []


def check(label: str, ok: bool) -> None:
    RESULTS.append((label, ok))
    print(f"  [{'PASS' if ok else 'FAIL'}] {label}")


def paired_latency(a: nn.Module, b: nn.Module, shape: tuple[int, ...], batch: int,
                   rounds: int = 5) -> tuple[float, float]:
    """Latency of a and b: per round the median of timed runs, a and b alternately; then the
    lowest round of each. Other people's jobs on a shared machine only ever add time, so the
    quietest round is the best estimate of each model's own cost (the median of rounds let one
    busy spike on the float model inflate a ratio 3× in a trial run)."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(measure_latency(a, shape, batch, repeats=20, max_seconds=2.0))
        tb.append(measure_latency(b, shape, batch, repeats=20, max_seconds=2.0))
    return min(ta), min(tb)


def bench_structured() -> None:
    import torchvision

    print("\n== structured pruning, 50% of channels, 3×32×32 ==")
    ctx = CompressionContext(input_shape=(3, 32, 32))
    for arch in ("resnet18", "mobilenet_v2"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)(num_classes=10).eval()
        t0 = time.perf_counter()
        try:
            pruned = structured.apply(copy.deepcopy(model), StructuredPruneParams(ratio=0.5), ctx)
        except Exception as exc:  # report and go on: the other checks still mean something
            check(f"{arch}: structured pruning runs ({type(exc).__name__}: {exc})", False)
            continue
        took = time.perf_counter() - t0
        p0, p1 = count_params(model), count_params(pruned.eval())
        l0, l1 = paired_latency(model, pruned, (3, 32, 32), 32)
        b0, b1 = paired_latency(model, pruned, (3, 32, 32), 1)
        print(f"  {arch}: params {p0:,} → {p1:,} ({p1 / p0:.3f}×), pruning took {took:.1f} s")
        print(f"  {arch}: latency b32 {l0:.2f} → {l1:.2f} ms ({l0 / l1:.2f}×), "
              f"b1 {b0:.2f} → {b1:.2f} ms ({b0 / b1:.2f}×)")
        check(f"{arch}: runs, output shape kept",
              tuple(pruned(torch.randn(2, 3, 32, 32)).shape) == (2, 10))
        if arch == "resnet18":
            check(f"{arch}: latency ratio at batch 32 {l0 / l1:.2f} ≥ 1.7", l0 / l1 >= 1.7)
            check(f"{arch}: params ratio {p1 / p0:.3f} ≤ 0.3", p1 / p0 <= 0.3)
        else:
            print(f"  (mobilenet_v2 is checked for running without errors; its ratios are "
                  f"{l0 / l1:.2f}× latency and {p1 / p0:.3f}× params)")


def mlp(*sizes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def accuracy(model: nn.Module, data) -> float:
    return 100.0 * evaluate(model, data)["accuracy"]


def bench_mlp(bundle) -> nn.Module:
    print("\n== MLP 784-1024-1024-10 on MNIST (8,000 train / 2,000 test) ==")
    torch.manual_seed(0)
    model = mlp(784, 1024, 1024, 10)
    for _ in make_finetune(bundle.train, batch_size=128, lr=1e-3)(model, 3):
        pass
    model.eval()
    acc0 = accuracy(model, bundle.val)
    ctx = CompressionContext(input_shape=(1, 28, 28), calibration=bundle.train)
    q = dynamic.apply(copy.deepcopy(model), DynamicInt8Params(), ctx)
    acc1 = accuracy(q, bundle.val)
    s0, s1 = model_size_bytes(model)[0], model_size_bytes(q)[0]
    l0, l1 = paired_latency(model, q, (1, 28, 28), 64)
    print(f"  dynamic int8: accuracy {acc0:.2f}% → {acc1:.2f}%, size {s0:,} → {s1:,} B "
          f"({s1 / s0:.3f}×), latency b64 {l0:.3f} → {l1:.3f} ms ({l0 / l1:.2f}×)")
    check(f"dynamic int8 latency ratio at batch 64 {l0 / l1:.2f} ≥ 1.5", l0 / l1 >= 1.5)
    check(f"dynamic int8 size ratio {s1 / s0:.3f} ≤ 0.3", s1 / s0 <= 0.3)
    check(f"dynamic int8 accuracy change {acc1 - acc0:+.2f} points within 0.5",
          abs(acc1 - acc0) <= 0.5)
    bench_svd(model, ctx, bundle, acc0)
    return model


def bench_svd(model: nn.Module, ctx: CompressionContext, bundle, acc0: float) -> None:
    low = svd.apply(copy.deepcopy(model), LowRankParams(rank_fraction=0.25), ctx)
    for note in ctx.drain_notes():
        print(f"  {note.message}")
    acc2 = accuracy(low, bundle.val)
    l0, l2 = paired_latency(model, low, (1, 28, 28), 64)
    p0, p2 = count_params(model), count_params(low)
    print(f"  SVD 25% rank: params {p0:,} → {p2:,} ({p2 / p0:.3f}×), accuracy {acc0:.2f}% → "
          f"{acc2:.2f}% (no fine-tuning), latency b64 {l0:.3f} → {l2:.3f} ms ({l0 / l2:.2f}×)")
    check(f"SVD 25% rank latency ratio at batch 64 {l0 / l2:.2f} ≥ 1.5", l0 / l2 >= 1.5)


def bench_deep_compression(bundle, epochs: int, prune_epochs: int) -> None:
    print("\n== Deep Compression: MLP 784-300-100-10, gradual pruning → int8 ==")
    torch.manual_seed(0)
    model = mlp(784, 300, 100, 10)
    for _ in make_finetune(bundle.train, batch_size=64, lr=1e-3)(model, epochs):
        pass
    model.eval()
    acc0 = accuracy(model, bundle.val)
    zip0 = model_size_bytes(model)[1]
    finetune = make_finetune(bundle.train, batch_size=64, lr=5e-4, seed=1)
    ctx = CompressionContext(
        input_shape=(1, 28, 28), calibration=bundle.train, finetune=finetune,
        steps_per_epoch=steps_per_epoch(bundle.train, 64), epochs=prune_epochs,
    )
    params = MagnitudePruneParams(sparsity=0.92, schedule="gradual", scope="global",
                                  end_fraction=0.6, frequency=20)
    pruned = copy.deepcopy(model)
    gen = unstructured.apply(pruned, params, ctx)
    for _ in gen:
        pass
    sparsity = 1 - count_nonzero(pruned) / count_params(pruned)
    acc1 = accuracy(pruned, bundle.val)
    q = dynamic.apply(pruned, DynamicInt8Params(), ctx)
    acc2 = accuracy(q, bundle.val)
    zip2 = model_size_bytes(q)[1]
    print(f"  float: accuracy {acc0:.2f}%, zip {zip0:,} B")
    print(f"  pruned ({sparsity:.1%} of weights zero, {prune_epochs} epochs): "
          f"accuracy {acc1:.2f}%, zip {model_size_bytes(pruned)[1]:,} B")
    print(f"  pruned + int8: accuracy {acc2:.2f}%, zip {zip2:,} B ({zip0 / zip2:.1f}× smaller)")
    check(f"sparsity {sparsity:.1%} ≥ 90%", sparsity >= 0.90)
    check(f"zip ratio {zip0 / zip2:.1f}× ≥ 20×", zip0 / zip2 >= 20)
    check(f"accuracy change {acc2 - acc0:+.2f} points within 1.0", abs(acc2 - acc0) <= 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="/work/shared/data", help="folder holding MNIST/raw")
    parser.add_argument("--skip-deep", action="store_true")
    parser.add_argument("--skip-int8-paths", action="store_true",
                        help="skip torch.ao vs torchao/pt2e (about 2-3 min with compiling)")
    parser.add_argument("--deep-epochs", type=int, default=8, help="float MLP training epochs")
    parser.add_argument("--prune-epochs", type=int, default=8, help="gradual pruning epochs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 gives stable timings on a busy shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    start = time.perf_counter()
    bench_structured()
    bundle = load_data(DataConfig(spec=f"mnist:{args.mnist}", split="ordered",
                                  val_fraction=0.2))
    model = bench_mlp(bundle)
    if not args.skip_int8_paths:
        from bench_int8_paths import bench_int8_paths  # this folder (run as a script)

        bench_int8_paths(model, bundle)
    if not args.skip_deep:
        bench_deep_compression(bundle, args.deep_epochs, args.prune_epochs)
    failed = [label for label, ok in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed "
          f"in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
