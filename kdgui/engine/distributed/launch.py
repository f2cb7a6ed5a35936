"""Starting a distributed run from a front end, and following it as plain events.

``training.processes = N > 1`` (``kdgui run CONFIG --nproc N``, or the window's Processes
field) makes :func:`kdgui.engine.jobs.run` call :func:`run_launched`: it starts PyTorch's own
elastic agent, ``python -m torch.distributed.run --standalone --nproc-per-node N -m kdgui run
CONFIG --events jsonl`` (torchrun; ``--standalone`` rendezvouses on a free local port), in a
session of its own, and turns rank 0's JSON-lines stdout back into the run's events, so the
terminal's printer and the window's plots see what an in-process run sends.

Control goes the other way through a small file (``KDGUI_CONTROL_FILE``): ``pause``,
``resume`` or ``stop``, which rank 0 reads between batches and every rank obeys at the same
batch. Closing the generator (the window quits) ends the agent, which ends its workers.

This module imports no torch: the parent only starts and watches processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from kdgui.core.config import ExperimentConfig
from kdgui.core.errors import ConfigError
from kdgui.core.events import Event, RunControl, RunFailed, RunFinished, event_from_dict

#: Set by the launcher for rank 0's stop/pause requests (read in kdgui.engine.distributed.world).
CONTROL_FILE_ENV = "KDGUI_CONTROL_FILE"
#: Seconds the agent gets to end its workers after SIGTERM before it is killed.
TERMINATE_GRACE_S = 10.0

RunGenerator = Generator[Event, "str | None", "dict[str, Any] | None"]


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting its variables)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def env_rank() -> int:
    """This process's global rank (0 outside a distributed launch)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def wants_launch(config: ExperimentConfig) -> bool:
    """A config asking for several processes, seen outside torchrun: the front door launches."""
    return config.training.processes > 1 and not launched()


def torchrun_command(nproc: int, kdgui_args: list[str]) -> list[str]:
    """torchrun (PyTorch's elastic agent) running ``kdgui KDGUI_ARGS`` in ``nproc`` processes on
    this machine; no restarts (a failing rank ends the run, and the agent ends the others)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "--max-restarts=0", "--monitor-interval=0.5",
            "-m", "kdgui", *kdgui_args]


def run_launched(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    control: RunControl | None = None,
    resume: bool = False,
    runs_root: str | Path | None = None,
) -> RunGenerator:
    """Run ``config`` in ``training.processes`` processes under torchrun; yield rank 0's events
    (the same events an in-process run yields), return its summary."""
    from kdgui.core.config_io import dump_config

    control = control or RunControl()
    work = Path(tempfile.mkdtemp(prefix="kdgui-torchrun-"))
    try:
        if resume:
            if out_dir is None:
                raise ConfigError("resuming needs the run folder", "Pass --resume RUN_DIR.")
            args = ["run", "--resume", str(out_dir)]
        else:
            config_file = work / "config.yaml"
            config_file.write_text(dump_config(config), encoding="utf-8")
            args = ["run", str(config_file)] + (["--out", str(out_dir)] if out_dir else [])
        args += ["--events", "jsonl"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[CONTROL_FILE_ENV] = str(work / "control")
        if runs_root is not None:
            env["KDGUI_RUNS"] = str(runs_root)
        return (yield from _follow(
            torchrun_command(config.training.processes, args), env, work, control))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _follow(command: list[str], env: dict[str, str], work: Path,
            control: RunControl) -> RunGenerator:
    stderr_path = work / "stderr.log"
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env,
                                text=True, encoding="utf-8", errors="replace", bufsize=1,
                                start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read, args=(proc, lines), daemon=True,
                              name="kdgui-torchrun-reader")
    reader.start()
    last: Event | None = None
    sent = "resume"
    try:
        while True:
            sent = _pass_control(control, work / "control", sent)
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            event = _event(line)
            if event is None:
                continue
            last = event
            control.apply((yield event))
        code = proc.wait()
        if isinstance(last, (RunFinished, RunFailed)):
            return last.summary if isinstance(last, RunFinished) else None
        yield _failure(code, stderr_path)
        return None
    finally:
        _end(proc)
        reader.join(timeout=1.0)


def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    with contextlib.suppress(ValueError, OSError):
        for line in proc.stdout:
            lines.put(line)
    lines.put(None)


def _event(line: str) -> Event | None:
    """A JSON-lines event from rank 0's stdout; anything else (a library's print) is skipped."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
        return event_from_dict(data) if isinstance(data, dict) and "event" in data else None
    except (ValueError, KeyError, TypeError):
        return None


def _pass_control(control: RunControl, path: Path, sent: str) -> str:
    """Write the control's state for rank 0 when it changed; returns what is now written."""
    now = "stop" if control.stop_requested else "pause" if control.paused else "resume"
    if now != sent:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(now, encoding="utf-8")
        os.replace(tmp, path)
    return now


def _failure(code: int, stderr_path: Path) -> RunFailed:
    """The run's processes ended without a result: their last error lines say why."""
    try:
        text = stderr_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    lines = text.splitlines()
    user = [ln.split("kdgui: error: ", 1)[1] for ln in lines if "kdgui: error: " in ln]
    if user:  # a process refused bad input before it could send an event: its one line
        return RunFailed(run_dir="", error={"type": "ConfigError", "what": user[0].strip(),
                                            "fix": "", "source": "", "message": user[0].strip()})
    errors = [ln for ln in lines if "kdgui: " in ln or "Error" in ln]
    detail = (errors[-1] if errors else (text.strip().splitlines() or [""])[-1]).strip()
    return RunFailed(run_dir="", internal=True, error={
        "type": "DistributedRunFailed",
        "what": f"the distributed run ended (exit code {code}) without a result"
                + (f": {detail[:300]}" if detail else ""),
        "fix": "Run the same config with --nproc 1 to see the error in one process, or start "
               "torchrun yourself to read every process's output.",
        "source": "",
        "message": f"distributed run failed (exit code {code})",
        "traceback": text[-4000:],
    })


def _end(proc: subprocess.Popen[str]) -> None:
    """End the agent (and with it its workers) if it still runs; never leave it behind."""
    if proc.poll() is not None:
        return
    _signal(proc, "SIGTERM")
    try:
        proc.wait(timeout=TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal(proc, "SIGKILL")
        proc.wait()


def _signal(proc: subprocess.Popen[str], name: str) -> None:
    """On POSIX the agent leads its own session: its workers get the signal too."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, getattr(signal, name))
        elif name == "SIGTERM":
            proc.terminate()
        else:
            proc.kill()


__all__ = ["CONTROL_FILE_ENV", "env_rank", "launched", "run_launched", "torchrun_command",
           "wants_launch"]
