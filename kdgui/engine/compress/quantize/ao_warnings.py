"""The one place that keeps ``torch.ao.quantization``'s deprecation notices away from the user.

torch 2.14.1 warns on every use of ``torch.ao.quantization`` that it "is deprecated and will be
removed", and its int8 modules and observers add two more notices about their own internals. The
quantizers behind ``dynamic-int8``, ``static-int8`` and ``qat-int8`` still run on torch.ao because
it measured faster on CPU than torchao and the pt2e flow (``bench/bench_compression.py``, the
numbers in the methods page), so the notices say nothing a user can act on: the choice is ours and
sits behind the registered method names.

The filters are *precise*: each names the warning's category, the start of its message and the
module it is attributed to, so any other warning (torch's or a user's) still shows, and a
new torch.ao notice with a different text would show too. They are installed when
``kdgui.engine.compress.quantize`` is imported (every quantizer imports it) and by the export code
that reloads int8 tensors (``kdgui.engine.export.state_dict``); installing twice is harmless (``filterwarnings`` replaces an equal
filter instead of adding a second).
"""

from __future__ import annotations

import warnings

#: (category, message regex, module regex) of each torch.ao notice that is filtered.
#: The deprecation notice is attributed to the caller (the quantizer module) or to torch.ao's own
#: modules, depending on which API raised it.
FILTERS: tuple[tuple[type[Warning], str, str], ...] = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated", r"(torch\.ao|kdgui)\."),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized "
                  r"tensor creation functions", r"torch\.ao\."),
    (UserWarning, r"Please use quant_min and quant_max to specify the range for observers",
     r"torch\.ao\.quantization\.observer"),
    # torch.load rebuilding a quantized (int8) tensor reads ``storage.device`` of a TypedStorage
    # (torch._utils._rebuild_qtensor): a state_dict export of an int8 model, verified on reload.
    (UserWarning, r"TypedStorage is deprecated", r"torch\._utils"),
)


def silence_torch_ao_deprecations() -> None:
    """Install the filters of :data:`FILTERS` (idempotent)."""
    for category, message, module in FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


__all__ = ["FILTERS", "silence_torch_ao_deprecations"]
