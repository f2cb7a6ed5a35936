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
    p.add_argument("--compare", metavar="B",
                   help="a second model to draw beside MODEL (same forms, or RUN:MODEL as in "
                        "kdgui diff); prints the layer-by-layer diff, and each graph's changed "
                        "layers carry kdgui.change")
    p.add_argument("--overlays", action="store_true",
                   help="measure each layer's latency and quantization error and write them on "
                        "the graph (kdgui.latency_ms, kdgui.quant_error)")
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


def _serve_until_stopped(servers: list) -> None:
    """Keep the servers up until one stops or the person presses Ctrl-C (or SIGTERM arrives)."""
    print("serving on 127.0.0.1 only; Ctrl-C to stop", file=sys.stderr)
    try:
        while all(server.running for server in servers):
            _pause(0.2)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)


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
    if args.compare or args.overlays:
        return cmd_compare(args)
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
            _serve_until_stopped([server])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``--compare B`` (two graphs and their diff) and/or ``--overlays`` (measured layers)."""
    import contextlib

    from kdgui.cli.diff_cmd import format_diff
    from kdgui.engine.jobs import compare_models, compare_source, measure_model, netron_server

    kwargs = {"arch": args.arch, "num_classes": args.num_classes, "trust": args.trust,
              "input_shape": parse_shape(args.input_shape)}
    names = [args.model, *([args.compare] if args.compare else [])]
    sources = [compare_source(name, **kwargs) for name in names]
    work = tempfile.mkdtemp(prefix="kdgui-netron-model-")
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading_main() else None
    try:
        if sys.stderr.isatty():
            print("preparing " + " and ".join(s.label for s in sources) + " …",
                  file=sys.stderr)
        if args.compare:
            result = compare_models(*sources, work, overlays=args.overlays)
            sides = [result.a, result.b]
            print(format_diff({"a": sources[0].label, "b": sources[1].label,
                               "rows": result.rows, "params": list(result.params),
                               "changed": sum(r["status"] != "same" for r in result.rows)}))
            for note in result.notes:
                print(f"note: {note}", file=sys.stderr)
        else:
            sides = [measure_model(sources[0], work, overlays=True)]
        for side in sides:
            for note in side.prepared.notes:
                print(f"note: {note}", file=sys.stderr)
            if side.overlays is not None:
                print(format_overlays(side.prepared.source.label, side.overlays))
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(netron_server(side.prepared.onnx_path,
                                                         args.port + i if args.port else None))
                       for i, side in enumerate(sides)]
            for label, server in zip(("A", "B"), servers, strict=False):
                url = server.url.rstrip("/")
                print(f"{label}: {url}" if len(servers) > 1 else url, flush=True)
                if not args.no_browser:
                    webbrowser.open(url)
            _serve_until_stopped(servers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def format_overlays(label: str, overlays: object) -> str:
    """Each measured layer's latency and quantization error as an aligned table."""
    values = getattr(overlays, "values", {})
    lines = [f"{label}: per-layer measurements on {getattr(overlays, 'inputs', '')}"]
    reference = getattr(overlays, "reference", None)
    if reference:
        lines[0] += f"; quantization error vs {reference}"
    width = max([len(n) for n in values] + [5])
    lines.append(f"{'layer':<{width}}  {'ms/batch':>9}  {'quant err':>9}")
    for name, row in values.items():
        ms, err = row.get("latency_ms"), row.get("quant_error")
        lines.append(f"{name:<{width}}  {'' if ms is None else f'{ms:.3f}':>9}  "
                     f"{'' if err is None else f'{err:.3g}':>9}")
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
