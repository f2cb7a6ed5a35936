"""Netron: the loopback server, its expiry check, and ONNX graphs annotated with compression."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import socket
import urllib.error
import urllib.request
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kdgui.core.components.compression import (
    FakeQuantParams,
    LowRankParams,
    MagnitudePruneParams,
    StructuredPruneParams,
)
from kdgui.core.errors import ModelLoadError
from kdgui.engine import netron_server as ns
from kdgui.engine.compress import CompressionContext
from kdgui.engine.compress.lowrank import svd
from kdgui.engine.compress.prune import structured, unstructured
from kdgui.engine.compress.quantize import dynamic, fake
from kdgui.engine.metrics import layer_table
from kdgui.engine.netron_graph import export_annotated, node_scopes, read_annotations
from kdgui.engine.netron_sources import prepare, run_sources, source_for_path
from tests.engine.netron_run import INPUT_SHAPE, TinyNet, make_run


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    """A small annotated graph, plus a private file next to it that must not be served."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    (tmp_path / "secret.txt").write_text("not for the browser")
    return export_annotated(model, (1, 4, 4), tmp_path / "tiny.onnx").path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("netron-run"))


# -- the server -----------------------------------------------------------------------------

def test_server_listens_on_loopback_only_serves_page_and_model_and_frees_port(
        onnx_file: Path) -> None:
    server = ns.NetronServer(onnx_file)
    url = server.start()
    port = server.port
    try:
        assert url == f"http://127.0.0.1:{port}/"
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1, nothing else
        status, page = get(url)
        assert status == 200 and b"<title>Netron</title>" in page
        assert b'<meta name="file" content="/data/tiny.onnx">' in page
        status, data = get(url + "data/tiny.onnx")
        assert status == 200 and data == onnx_file.read_bytes()
        assert get(url + "data/secret.txt")[0] == 404  # only the model, not its folder
    finally:
        server.stop()
    assert not server.running and ns.port_is_free(port)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_taken_port_is_a_user_error_naming_it(onnx_file: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ns.NetronError, match=f"port {port}"):
            ns.NetronServer(onnx_file, port).start()


def test_expiry_is_read_from_the_page_date_and_blocks_start(onnx_file: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    info = ns.netron_info()
    assert info.installed and info.released is not None
    assert info.expires == info.released + dt.timedelta(days=180)
    late = ns.netron_info(now=info.expires + dt.timedelta(days=1))
    assert late.expired and not late.usable
    assert "pip install --upgrade netron" in late.message and f"{info.expires:%Y-%m-%d}" in (
        late.message)
    soon = ns.netron_info(now=info.expires - dt.timedelta(days=3))
    assert soon.usable and "stops working in" in soon.message
    assert ns.netron_info(now=info.released + dt.timedelta(days=30)).message == ""
    monkeypatch.setattr(ns, "netron_info", lambda now=None: late)
    with pytest.raises(ns.NetronError, match="too old"):
        ns.NetronServer(onnx_file).start()


def test_missing_netron_is_reported_not_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ns, "netron_dir", lambda: None)
    info = ns.netron_info()
    assert not info.usable and "pip install netron" in info.message


# -- annotated graphs -----------------------------------------------------------------------

def compressed_model() -> nn.Module:
    """Structured-pruned, magnitude-pruned, low-rank and fake-quantized (bits marked)."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, *INPUT_SHAPE), torch.randint(0, 4, (8,)))
    ctx = CompressionContext(input_shape=INPUT_SHAPE, calibration=data)
    model = structured.apply(TinyNet().eval(), StructuredPruneParams(ratio=0.5), ctx)
    model = svd.apply(model, LowRankParams(rank=2, layers=["fc1"], skip_if_no_saving=False), ctx)
    model = unstructured.apply(model, MagnitudePruneParams(sparsity=0.5), ctx)
    return fake.apply(model, FakeQuantParams(bits=4), ctx)


def test_annotated_onnx_of_a_pruned_quantized_model_carries_per_layer_metadata(
        tmp_path: Path) -> None:
    model = compressed_model()
    rows = {r["name"]: r for r in layer_table(model, INPUT_SHAPE)}
    graph = export_annotated(model, INPUT_SHAPE, tmp_path / "m.onnx", title="pruned+quantized")
    proto = onnx.load(str(graph.path))
    onnx.checker.check_model(proto)
    found = read_annotations(graph.path)
    by_layer: dict[str, dict[str, str]] = {}
    for values in found.values():
        by_layer.setdefault(values["layer"], values)
    conv = by_layer["conv1"]
    assert int(conv["removed_channels"]) == rows["conv1"]["removed_channels"] > 0
    assert float(conv["sparsity"]) == pytest.approx(rows["conv1"]["sparsity"], abs=1e-4)
    assert float(conv["sparsity"]) > 0.3
    assert conv["bits"] == "4"
    for half in ("fc1.0", "fc1.1"):  # the rank sits on the factorised pair, shown on both
        assert by_layer[half]["rank"] == "2" and by_layer[half]["block"] == "fc1"
    assert by_layer["fc2"]["bits"] == "4"
    node = next(n for n in proto.graph.node if n.name in graph.nodes["conv1"])
    assert "removed channels" in node.doc_string and "4 bits" in node.doc_string
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["kdgui.prune_state"] == model.kdgui_prune_state
    assert meta["kdgui.title"] == "pruned+quantized"
    assert not graph.unmatched
    assert all("pkg.torch.onnx.stack_trace" not in {p.key for p in n.metadata_props}
               for n in proto.graph.node)


def test_int8_model_is_drawn_as_its_float_graph_with_bits_and_a_note(tmp_path: Path) -> None:
    ctx = CompressionContext(input_shape=INPUT_SHAPE)
    from kdgui.core.components.compression import DynamicInt8Params

    q = dynamic.apply(TinyNet().eval(), DynamicInt8Params(), ctx)
    graph = export_annotated(q, INPUT_SHAPE, tmp_path / "q.onnx")
    bits = {v["layer"]: v.get("bits") for v in read_annotations(graph.path).values()}
    assert bits["fc1"] == bits["fc2"] == "8" and bits["conv1"] is None
    assert any("int8" in n and "float" in n for n in graph.notes)
    scopes = [node_scopes(n) for n in onnx.load(str(graph.path)).graph.node]
    assert ["fc2"] in scopes  # module paths survive the export


def test_run_folder_stages_are_annotated_from_their_metrics(run_dir: Path,
                                                            tmp_path: Path) -> None:
    sources = run_sources(run_dir)
    assert [s.label for s in sources] == ["stage 0: before", "stage 1: prune", "stage 2: int8"]
    assert source_for_path(run_dir).label == "stage 2: int8"  # the final student
    assert source_for_path(run_dir / "stages" / "1_prune").label == "stage 1: prune"
    pruned = prepare(sources[1], tmp_path)
    sparsity = {v["layer"]: float(v["sparsity"]) for v in
                read_annotations(pruned.onnx_path).values()}
    table = {r["name"]: r["sparsity"] for r in pruned.layers}
    assert sparsity["conv2"] == pytest.approx(table["conv2"], abs=1e-4) and table["conv2"] > 0.3
    int8 = prepare(sources[2], tmp_path)
    assert any("float graph of '1_prune'" in n for n in int8.notes)
    assert {v["layer"]: v.get("bits") for v in
            read_annotations(int8.onnx_path).values()}["fc2"] == "8"
    assert int8.summary["params"] == sum(r["params"] for r in int8.layers)


def test_source_errors_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        source_for_path(tmp_path / "nope.pt")
    with pytest.raises(ModelLoadError, match="not a run or stage folder"):
        source_for_path(tmp_path)


# -- the CLI --------------------------------------------------------------------------------

def test_cli_prints_the_loopback_url_serves_and_frees_the_port_on_ctrl_c(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from kdgui.cli import netron_cmd

    seen: dict[str, object] = {}

    def fake_sleep(_: float) -> None:  # the first wait: check the server, then "press Ctrl-C"
        url = capsys.readouterr().out.strip().splitlines()[-1]
        seen["url"], seen["page"] = url, get(url + "/")
        raise KeyboardInterrupt

    monkeypatch.setattr(netron_cmd, "_pause", fake_sleep)
    monkeypatch.setattr(netron_cmd.webbrowser, "open", lambda url: seen.setdefault("opened", url))
    parser = argparse.ArgumentParser()
    netron_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["netron", str(run_dir / "stages" / "0_before"), "--no-browser"])
    assert args.handler(args) == 0
    url = str(seen["url"])
    assert url.startswith("http://127.0.0.1:") and "opened" not in seen
    assert seen["page"][0] == 200  # type: ignore[index]
    assert ns.port_is_free(int(url.rsplit(":", 1)[1]))


def test_cli_is_registered_and_rejects_a_bad_shape() -> None:
    from kdgui.cli import netron_cmd
    from kdgui.core.errors import ConfigError

    assert netron_cmd.parse_shape("1,28,28") == (1, 28, 28)
    with pytest.raises(ConfigError, match="not a shape"):
        netron_cmd.parse_shape("1,a")
    from kdgui.cli.main import build_parser  # type: ignore[attr-defined]

    assert "netron" in build_parser().format_help()


# -- hardening (issue 13, item 5) --------------------------------------------------------------

def raw_request(port: int, target: str, host: str | None) -> tuple[int, bytes]:
    """Send one GET by hand (urllib would fix the Host header) and read the status line."""
    lines = [f"GET {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The server may answer and hang up before a huge request is all sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall("\r\n".join(lines).encode("latin-1"))
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.partition(b"\r\n\r\n")[2]


LOOPBACK_HOSTS = ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "[::1]",
                  "[::1]:{port}", None]
FOREIGN_HOSTS = ["attacker.example", "attacker.example:{port}", "127.0.0.1.attacker.example",
                 "localhost.evil:{port}", "127.0.0.1:80@evil", "[::2]:{port}", "0.0.0.0", ""]


def test_only_loopback_host_headers_get_the_model(onnx_file: Path) -> None:
    """DNS rebinding: a page on attacker.example resolved to 127.0.0.1 must not read the model,
    so any Host header but a loopback name (any port) gets 403."""
    model = onnx_file.read_bytes()
    with ns.NetronServer(onnx_file) as server:
        port = int(server.port or 0)
        for host in LOOPBACK_HOSTS:
            status, body = raw_request(port, "/data/tiny.onnx",
                                       host.format(port=port) if host else None)
            assert (status, body == model) == (200, True), host
        for host in FOREIGN_HOSTS:
            for target in ("/", "/data/tiny.onnx"):
                status, body = raw_request(port, target, host.format(port=port))
                assert status == 403 and model not in body, host


def test_a_huge_url_gets_414_and_no_traceback(onnx_file: Path, capfd) -> None:
    with ns.NetronServer(onnx_file) as server:
        port = int(server.port or 0)
        assert raw_request(port, "/" + "a" * 10_000, "127.0.0.1")[0] == 414
        raw_request(port, "/" + "a" * 200_000, "127.0.0.1")  # over the stdlib's 64 KB line limit
        assert raw_request(port, "/data/tiny.onnx", "127.0.0.1")[0] == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err


def test_host_is_loopback_reads_ports_and_brackets() -> None:
    from kdgui.engine.netron_guard import host_is_loopback

    assert host_is_loopback("localhost:8080") and host_is_loopback("[::1]:1")
    assert not host_is_loopback("localhost:80x") and not host_is_loopback("::1")
    assert not host_is_loopback("[::1]evil") and not host_is_loopback("127.0.0.2")


def test_cli_on_a_file_that_is_not_onnx_exits_2_with_one_error_line(tmp_path: Path, capsys) -> None:
    from kdgui.cli.main import main

    for name, data in (("not_an_onnx.onnx", b"garbage\x00\x01 not onnx"), ("empty.onnx", b"")):
        (tmp_path / name).write_bytes(data)
        assert main(["netron", str(tmp_path / name), "--no-browser"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("kdgui: error: ")
        assert "ONNX" in err
        assert "internal error" not in err and "DecodeError:" not in err


SIGTERM_SCRIPT = """
import sys, time
from kdgui.cli.main import main
from kdgui.cli import netron_cmd
netron_cmd.webbrowser.open = lambda url: None
sys.exit(main(["netron", sys.argv[1], "--no-browser"]))
"""


def test_sigterm_removes_the_temporary_folders(run_dir: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT,
                             str(run_dir / "stages" / "0_before")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        url = proc.stdout.readline().strip()  # printed once the server is up
        assert url.startswith("http://127.0.0.1:")
        assert any(p.name.startswith("kdgui-netron") for p in temp.iterdir())
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while any(temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p.name for p in temp.iterdir() if p.name.startswith("kdgui-netron")]
    assert "Traceback" not in proc.stderr.read()
