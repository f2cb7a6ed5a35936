"""Deep Compression on LeNet-300-100 (issue 16): prune → share → Huffman-code, against the paper.

Runs ``resources/configs/deep-compression-lenet300.yaml`` on the MNIST test set (split 8,000 /
2,000 in order) exactly as ``kdgui run CONFIG --set data.spec=mnist:ROOT`` does, then checks what
the issue asks: the coded file is ≥ 40× smaller than the float model, accuracy stays within 0.5
points of the float model's, and the ``.kdc`` file reloads from its own recorded architecture and
computes what the final stage computes. Prints the staged table beside the paper's figures
(LeNet-300-100: pruning 12×, + sharing 32×, + Huffman 40×; 1.64% → 1.58% error).

    .venv/bin/python bench/bench_deep_compression.py [--mnist ROOT] [--out DIR]

It took 3 min 8 s of CPU time (8 + 8 + 2 epochs on 8,000 images; 12 min of wall time on a
machine shared with other jobs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdgui.cli.printer import staged_table
from kdgui.core.config_io import apply_overrides, load_config
from kdgui.core.events import RunFailed, RunFinished

CONFIG = Path(__file__).resolve().parents[1] / "resources" / "configs" / (
    "deep-compression-lenet300.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="/work/shared/data", help="folder holding MNIST/raw")
    parser.add_argument("--out", help="run folder (default: a temporary one)")
    args = parser.parse_args()
    import torch

    from kdgui.engine.export import load_exported
    from kdgui.engine.jobs import run

    config = apply_overrides(load_config(CONFIG), [f"data.spec=mnist:{args.mnist}"])
    out = Path(args.out or tempfile.mkdtemp(prefix="kdgui-deepc-")) / "run"
    start = time.perf_counter()
    last = None
    for event in run(config, out):
        last = event
    if not isinstance(last, RunFinished):
        print(f"run failed: {last.error if isinstance(last, RunFailed) else last}")
        return 1
    summary = last.summary
    table = summary["deep_compression"]
    print(staged_table(table))
    rows = {r["stage"]: r for r in table["rows"]}
    acc0, acc1 = rows["float"]["accuracy"], rows["coding"]["accuracy"]
    ratio = rows["coding"]["ratio"]
    (export,) = [e for e in summary["exports"] if e["format"] == "deepc"]
    coded = load_exported(export["path"])
    stage = load_exported(next(p for p in (out / "stages").glob("2_*/model.pt2")))
    x = torch.randn(64, *coded.metadata["input_shape"])
    diff = float((coded(x) - stage(x)).abs().max())
    checks = [
        (f"coded size {ratio:.1f}x smaller than float ≥ 40x", ratio >= 40),
        (f"accuracy {100 * acc0:.2f}% → {100 * acc1:.2f}% within 0.5 points",
         acc1 >= acc0 - 0.005),
        (f"the .kdc file reloads and matches the final stage (max diff {diff:.2g})",
         export["verified"] and diff <= 1e-4),
    ]
    for label, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {label}")
    print(f"{time.perf_counter() - start:.0f} s; run folder {out}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
