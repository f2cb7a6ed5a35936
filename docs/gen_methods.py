"""The "Methods" reference, generated from the registries so it cannot drift from the code.

Every loss, pruner, quantizer, decomposer and exporter is declared once in
``kdgui/core/components/`` with its title, summary, formula, paper and parameter model. This
module renders those declarations as Markdown; ``docs/hooks.py`` inserts the result where
``docs/methods.md`` says ``<!-- gen: methods -->`` at every ``mkdocs build``.

Run it directly to see the Markdown: ``.venv/bin/python docs/gen_methods.py``.
"""

from __future__ import annotations

from typing import Any

from kdgui.core.params import ParamSpec
from kdgui.core.registry import KINDS, REGISTRIES, Component

#: Section titles and what each kind of component is used for, in the order of KINDS.
SECTIONS = {
    "loss": ("Distillation losses", "Terms of the training loss: each entry of "
             "`distill.terms` (`{name, weight, params, pairs}`, or `--term NAME:weight=W,KEY=V` "
             "on the command line) names one of these with its parameters, and the loss is the "
             "weighted sum. The shorthand `distill.alpha`/`beta`/`gamma` means "
             "`L = (1 - a - b - g) L_hard + a L_soft + b L_feature + g L_attention`. A loss that "
             "reads feature maps takes layer `pairs`; the others read logits (and labels)."),
    "pruner": ("Pruning", "Compression steps with `kind: prune` and `method:` one of these."),
    "quantizer": ("Quantization", "Compression steps with `kind: quantize`."),
    "decomposer": ("Low-rank factorization", "Compression steps with `kind: lowrank`."),
    "exporter": ("Export formats", "Names for `export.formats` in the config, `--export` on "
                 "the command line and the window's export dialog. Every file is reloaded "
                 "after writing and its outputs compared with PyTorch's."),
}

#: Where to read the papers the registries cite, keyed by a phrase of the title. A citation
#: whose phrase is not here is still printed, only without a link.
PAPER_LINKS = {
    "Distilling the Knowledge": "https://arxiv.org/abs/1503.02531",
    "FitNets": "https://arxiv.org/abs/1412.6550",
    "Paying More Attention to Attention": "https://arxiv.org/abs/1612.03928",
    "Decoupled Knowledge Distillation": "https://arxiv.org/abs/2203.08679",
    "Knowledge Distillation from A Stronger Teacher": "https://arxiv.org/abs/2205.10536",
    "Logit Standardization": "https://arxiv.org/abs/2403.01427",
    "Relational Knowledge Distillation": "https://arxiv.org/abs/1904.05068",
    "Probabilistic Knowledge Transfer": "https://arxiv.org/abs/1803.10837",
    "Similarity-Preserving": "https://arxiv.org/abs/1907.09682",
    "Contrastive Representation Distillation": "https://arxiv.org/abs/1910.10699",
    "TinyBERT": "https://arxiv.org/abs/1909.10351",
    "MiniLM": "https://arxiv.org/abs/2002.10957",
    "To prune, or not to prune": "https://arxiv.org/abs/1710.01878",
    "Learning both Weights and Connections": "https://arxiv.org/abs/1506.02626",
    "DepGraph": "https://arxiv.org/abs/2301.12900",
    "Integer-Arithmetic-Only": "https://arxiv.org/abs/1712.05877",
    "Deep Compression": "https://arxiv.org/abs/1510.00149",
    "Exploiting Linear Structure": "https://arxiv.org/abs/1404.0736",
    "Compression of Deep": "https://arxiv.org/abs/1511.06530",
}


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(spec: ParamSpec) -> str:
    if spec.default is None:
        return "—"
    return f"`{spec.default!r}`" if isinstance(spec.default, str) else f"`{spec.default}`"


def _citations(paper: str) -> str:
    parts = []
    for cite in (p.strip() for p in paper.split(";") if p.strip()):
        link = next((url for key, url in PAPER_LINKS.items() if key in cite), None)
        parts.append(f"[{cite}]({link})" if link else cite)
    return "; ".join(parts)


def render_component(component: Component) -> str:
    """One component: heading, summary, formula, paper, parameter table."""
    lines = [f"### {component.title} — `{component.name}`", ""]
    if component.summary:
        lines += [component.summary, ""]
    if component.formula:
        lines += ["```text", component.formula, "```", ""]
    if component.paper:
        lines += [f"**Paper:** {_citations(component.paper)}", ""]
    specs = component.param_specs()
    if specs:
        lines += ["| parameter | default | allowed | what it does |", "|---|---|---|---|"]
        for spec in specs:
            unit = f" ({spec.unit})" if spec.unit else ""
            lines.append(
                f"| `{spec.name}` | {_default(spec)} | {_cell(spec.range_text() or 'any')}"
                f"{_cell(unit)} | {_cell(spec.help)} |"
            )
        lines.append("")
    else:
        lines += ["No parameters.", ""]
    return "\n".join(lines)


def render_formats() -> str:
    """The export format table, as declared with the exporters (suffix, check, int8)."""
    from kdgui.core.components.export import export_formats

    lines = ["| format | file | checked after writing by | holds `torch.ao` int8 |",
             "|---|---|---|---|"]
    for fmt in export_formats():
        lines.append(f"| `{fmt.name}` | `model{fmt.suffix}` | {_cell(fmt.verify)} | "
                     f"{_int8(fmt)} |")
    return "\n".join([*lines, ""])


def _int8(fmt: Any) -> str:
    if fmt.holds_static_int8:
        return "yes"
    return "dynamic int8 only" if fmt.holds_int8 else "no (needs a float model)"


def render_traits(kind: str, name: str) -> str:
    """What a compression method needs and makes, from the traits declared with it."""
    from kdgui.core.components.compression import STEP_KINDS, method_traits

    step = next((k for k, v in STEP_KINDS.items() if v == kind), None)
    if step is None:
        return ""
    traits = method_traits(step, name)

    def said(trait: object, always: str, sometimes: str) -> str | None:
        return always if trait is True else sometimes if callable(trait) else None

    notes = [n for n in (
        said(traits.trains_during_step, "trains during its step (finetune_epochs ≥ 1)",
             "may train during its step, depending on its parameters"),
        "makes an int8 model (must be the last step)" if traits.produces_int8 else None,
        said(traits.needs_calibration, "needs calibration data",
             "may need calibration data, depending on its parameters"),
        None if traits.needs_layers else "also works on a TorchScript, .pt2 or ONNX model file",
    ) if n]
    return f"**Traits:** {'; '.join(notes)}.\n" if notes else ""


def render() -> str:
    """The whole reference: one section per kind, one subsection per component."""
    out: list[str] = []
    for kind in KINDS:
        title, intro = SECTIONS.get(kind, (kind.title(), ""))
        out += [f"## {title}", ""]
        if intro:
            out += [intro, ""]
        if kind == "exporter":
            out += [render_formats()]
        for c in REGISTRIES[kind]:
            text = render_component(c)
            traits = render_traits(kind, c.name)
            out += [text.replace("\n\n", f"\n\n{traits}\n", 1) if traits else text]
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
