"""Regenerate every screenshot in the user guide with the app's own screenshot mode.

Each entry of :data:`SHOTS` is one PNG under ``docs/images/`` and the exact ``kdgui`` command that
takes it (``kdgui --demo [--autorun] --screenshot PATH --exit-when-done --panel NAME``). The docs
may only show images listed here: ``tests/test_docs.py`` fails when a page embeds a PNG that no
entry produces, so every picture in the guide can be remade with::

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py          # all of them
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py run      # by name

Panels are captured at 1280×800 in the light theme, so the pictures do not depend on the
desktop of whoever regenerates them. The run and results shots train the demo for real (two
epochs, with a pruning step so the before/after bars have a compressed stage); the others show
the window as it opens, without running, and the results shot lists the runs made before it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
KDGUI = [sys.executable, "-m", "kdgui"]
#: Relative to the repository (the shots run there), so pictures show no machine's home folder.
DEFAULT_RUNS = Path("runs") / "screenshots"
#: Settings shared by every shot: fixed size and theme, runs kept out of the repository's runs/.
COMMON = ["--size", "1280x800", "--theme", "light", "--no-hint"]
#: A short demo with one compression stage, so every plot of the Run panel has data.
RUN_SETTINGS = [
    "--set", "training.epochs=2",
    "--set", "compression.steps=[{kind: prune, method: magnitude, params: {sparsity: 0.6}, "
             "finetune_epochs: 1}]",
]


@dataclass(frozen=True)
class Shot:
    """One screenshot: its file name under docs/images and how the window is started for it."""

    name: str
    panel: str
    autorun: bool = False
    extra: list[str] = field(default_factory=list)
    #: ``kdgui`` arguments run first (``{runs}`` is the runs root), e.g. a lesson whose result
    #: the view then shows.
    before: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return IMAGES / f"{self.name}.png"

    def command(self, runs_root: Path) -> list[str]:
        args = [*KDGUI, "--demo", "--panel", self.panel, "--screenshot", str(self.path),
                "--exit-when-done", "--runs-root", str(runs_root), *COMMON, *self.extra]
        if self.autorun:
            args.insert(len(KDGUI) + 1, "--autorun")
        return args


# Panels the window supports today (kdgui/gui/main_window.py PANEL_KEYS). Add a line here when a
# new panel or view can be selected with --panel; leave out what the app cannot show by itself.
SHOTS: tuple[Shot, ...] = (
    Shot("first-run", "teacher", extra=["--hint"]),
    Shot("panel-teacher", "teacher", extra=["--screenshot-delay", "5000"]),
    Shot("panel-data", "data"),
    Shot("panel-student", "student"),
    Shot("panel-distill", "distill"),
    Shot("panel-compress", "compress", extra=RUN_SETTINGS[2:]),
    Shot("panel-run", "run", autorun=True, extra=RUN_SETTINGS),
    # After the run shot, so its run is in the list. Not --autorun: the window switches to the Run
    # panel when a run starts and shows it at the end, whatever --panel asked for.
    Shot("panel-results", "results"),
    Shot("view-explorer", "explorer"),
    Shot("view-sweeps", "sweeps"),
    # The missing-digit lesson is run first (MNIST when found, else the digits); the Classroom
    # view reopens on the lesson run last and shows its result.
    Shot("view-classroom", "classroom", before=[
        "classroom", "run", "missing-digit", "--out",
        "{runs}/lessons/20260101-000000-missing-digit"]),
    Shot("view-history", "history"),
    Shot("view-models", "models", extra=["--screenshot-delay", "1000"]),
    # A run pruned then quantized is made first (the newest run), and its last two stages
    # compared: outlines of the int8 layers, quantization error as the fill.
    Shot("view-models-compare", "models",
         extra=["--compare", "--size", "1600x900", "--screenshot-delay", "2000"],
         before=["run", "--teacher", "demo", "--data", "digits", "--quiet",
                 "--out", "{runs}/20260101-000000-compare", "--set", "training.epochs=1",
                 "--prune", "unstructured:0.5", "--quantize", "dynamic-int8"]),
)


def take(shot: Shot, runs_root: Path, timeout: float) -> bool:
    """Run the window for one shot; True when it exited 0 and wrote a PNG."""
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")
    before = shot.path.stat().st_mtime if shot.path.exists() else 0.0
    start = time.perf_counter()
    if shot.before:
        args = [a.replace("{runs}", str(runs_root)) for a in shot.before]
        subprocess.run([*KDGUI, *args], cwd=ROOT, env=env, timeout=timeout, check=False,
                       capture_output=True)
    try:
        proc = subprocess.run(shot.command(runs_root), cwd=ROOT, env=env, timeout=timeout,
                              capture_output=True, text=True, check=False)
    except subprocess.TimeoutExpired:
        print(f"  {shot.name}: timed out after {timeout:.0f} s", file=sys.stderr)
        return False
    fresh = shot.path.exists() and shot.path.stat().st_mtime > before
    ok = proc.returncode == 0 and fresh
    status = "ok" if ok else f"FAILED (exit {proc.returncode})"
    print(f"  {shot.name}: {status} in {time.perf_counter() - start:.0f} s")
    if not ok:
        print((proc.stderr or proc.stdout)[-2000:], file=sys.stderr)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the guide's screenshots.")
    parser.add_argument("names", nargs="*", help="shots to take (default: all): "
                        + ", ".join(s.name.removeprefix("panel-") for s in SHOTS))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per shot")
    parser.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS,
                        help="where the shots' runs are written (default: runs/screenshots, "
                        "emptied first when every shot is taken)")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    wanted = {n.removeprefix("panel-") for n in args.names}
    shots = [s for s in SHOTS if not wanted or s.name.removeprefix("panel-") in wanted]
    unknown = wanted - {s.name.removeprefix("panel-") for s in SHOTS}
    if unknown:
        parser.error(f"unknown shot(s): {', '.join(sorted(unknown))}")
    if args.list:
        for shot in shots:
            print(" ".join(shot.command(args.runs_root)))
        return 0
    if not wanted and args.runs_root == DEFAULT_RUNS:
        # The results shot lists this folder: start it empty so it shows this session's run only.
        shutil.rmtree(ROOT / DEFAULT_RUNS, ignore_errors=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {len(shots)} into {IMAGES.relative_to(ROOT)}/")
    failed = [s.name for s in shots if not take(s, args.runs_root, args.timeout)]
    if failed:
        print(f"screenshots: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
