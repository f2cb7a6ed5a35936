"""``kdgui netron MODEL``: draw a model (or a run's final student) in Netron, with compression shown.

The model is written to a temporary ONNX file whose nodes carry each layer's sparsity, removed
channels, rank and bit width (Netron shows them in the node's properties), served on 127.0.0.1
only, and the URL is printed; the server runs until Ctrl-C and then frees its port.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import webbrowser


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "netron",
        help="view a model, a run's final student or a stage in Netron (127.0.0.1 only)",
        description="Serve MODEL with Netron on 127.0.0.1 and print its URL. MODEL is a model "
        "file kdgui loads, a run folder (its final student) or a stage folder "
        "(runs/NAME/stages/1_prune). Each node's properties show what compression did "
        "(kdgui.sparsity, kdgui.removed_channels, kdgui.rank, kdgui.bits).")
    p.add_argument("model", help="model file, run folder or stage folder ('demo' for the demo)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    p.add_argument("--arch", help="architecture for a state_dict")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="one sample's shape when the file does not say (e.g. 1,28,28)")
    p.add_argument("--trust", action="store_true", help="allow pickled modules (runs code)")
    p.set_defaults(handler=cmd_netron)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    from kdgui.core.errors import ConfigError

    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"--input-shape '{text}' is not a shape",
                          "Give one sample's shape as positive integers, e.g. 1,28,28.")
    return shape


def _pause(seconds: float) -> None:
    """One wait of the serve loop (Ctrl-C interrupts it)."""
    time.sleep(seconds)


def cmd_netron(args: argparse.Namespace) -> int:
    from kdgui.core.errors import ConfigError
    from kdgui.engine.jobs import (
        model_source_for_path,
        netron_info,
        netron_server,
        prepare_model,
    )

    if args.port is not None and not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port", "Give a number from 1 to 65535.")
    info = netron_info()
    if not info.usable:
        raise info.error()
    if info.problem:
        print(f"warning: {info.message}", file=sys.stderr)
    source = model_source_for_path(args.model, arch=args.arch, num_classes=args.num_classes,
                             trust=args.trust, input_shape=parse_shape(args.input_shape))
    work = tempfile.mkdtemp(prefix="kdgui-netron-model-")
    # SIGTERM stops the server like Ctrl-C, so the folders below are removed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading_main() else None
    try:
        if sys.stderr.isatty():  # progress for people; a failure stays one line in logs
            print(f"preparing {source.label} …", file=sys.stderr)
        prepared = prepare_model(source, work)
        for note in prepared.notes:
            print(f"note: {note}", file=sys.stderr)
        with netron_server(prepared.onnx_path, args.port) as server:
            url = server.url.rstrip("/")
            print(url, flush=True)
            if not args.no_browser:
                webbrowser.open(url)
            print("serving on 127.0.0.1 only; Ctrl-C to stop", file=sys.stderr)
            try:
                while server.running:
                    _pause(0.2)
            except KeyboardInterrupt:
                print("\nstopped", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
