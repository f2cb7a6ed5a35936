"""Train the bundled demo teacher and write ``resources/demo_teacher/{spec.json,weights.safetensors}``.

The teacher is the ``cnn-teacher`` preset trained on scikit-learn's 8×8 digits with the same
80/20 random split (seed 0) and the same normalisation as ``kdgui.engine.data.load_data`` gives
for the default ``DataConfig()``, so the window's first demo run distils a teacher whose accuracy
on the validation split is honest (it never saw those images). Weights go to safetensors so that
loading the demo never unpickles anything. Runs in well under a minute on 2 CPU cores.

Usage: ``python scripts/build_demo_teacher.py [--out resources/demo_teacher] [--epochs 30]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from kdgui.core.config import DataConfig
from kdgui.core.presets import get_preset
from kdgui.engine.data import load_data
from kdgui.engine.models import build_from_spec, count_params

ROOT = Path(__file__).resolve().parents[1]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "demo_teacher")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    data = load_data(DataConfig())  # digits, 80/20 random split with seed 0, normalized
    x_tr, y_tr = data.train.tensors  # type: ignore[attr-defined]
    x_va, y_va = data.val.tensors  # type: ignore[attr-defined]

    spec = get_preset("cnn-teacher").build(data.input_shape, data.num_classes, 1.0)
    spec.name = "demo-teacher"
    model = build_from_spec(spec, data.input_shape, data.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    steps_per_epoch = (len(y_tr) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(y_tr))
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            xb = x_tr[idx]
            # light augmentation: shift by up to one pixel (digits are small and centred)
            dx, dy = torch.randint(-1, 2, (2,)).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), y_tr[idx])
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 5 == 0:
            print(f"epoch {epoch + 1}: loss {loss.item():.3f}, "
                  f"val acc {evaluate(model, x_va, y_va):.4f}")
    acc = evaluate(model, x_va, y_va)
    elapsed = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights),
              metadata={"format": "kdgui-spec-weights"})
    weights.chmod(0o644)  # safetensors writes owner-only files; this one is shipped
    meta = {
        "format": "kdgui-spec",
        "version": 1,
        "spec": spec.model_dump(),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "normalization": {"mean": [float(m) for m in data.mean],
                          "std": [float(s) for s in data.std], "scale": 16.0},
        "dataset": "digits (scikit-learn), DataConfig() split: 80/20 random, seed 0",
        "val_accuracy": round(acc, 4),
        "params": count_params(model),
        "train": {"epochs": args.epochs, "seed": args.seed, "seconds": round(elapsed, 1),
                  "torch": torch.__version__},
    }
    (args.out / "spec.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"val accuracy {acc:.4f}, {count_params(model):,} params, "
          f"{weights.stat().st_size / 1e6:.2f} MB, {elapsed:.1f} s → {args.out}")


if __name__ == "__main__":
    main()
