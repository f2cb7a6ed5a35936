"""The torchao / pt2e int8 paths the bench compares with torch.ao (kdgui.engine.compress.quantize
.alt_paths): a clear message without torchao, and outputs that match float with it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdgui.core.errors import CompressionError
from kdgui.engine.compress.quantize import alt_paths


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, 3)).eval()


def test_without_torchao_the_message_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(alt_paths, "torchao_version", lambda: None)
    with pytest.raises(CompressionError, match="needs torchao") as info:
        alt_paths.torchao_dynamic_int8(mlp())
    assert "pip install torchao==0.18.0" in info.value.fix
    with pytest.raises(CompressionError, match="pt2e"):
        alt_paths.pt2e_int8(mlp(), torch.randn(1, 1, 6, 6))


needs_torchao = pytest.mark.skipif(alt_paths.torchao_version() is None,
                                   reason="torchao is optional and not installed")


@needs_torchao
def test_torchao_dynamic_and_pt2e_static_match_float() -> None:
    model, x = mlp(), torch.randn(16, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
        dyn = alt_paths.torchao_dynamic_int8(model)
        assert float((dyn(x) - ref).abs().max()) < 0.05
        assert isinstance(model[1].weight, nn.Parameter) and type(model[1].weight.data) is \
            torch.Tensor  # the original is untouched
    graph = alt_paths.pt2e_int8(model, x[:1], [x], compile_model=False)  # compiling: the bench
    with torch.no_grad():
        assert float((graph(x) - ref).abs().max()) < 0.05
