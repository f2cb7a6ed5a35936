"""The classroom lessons, generated from ``kdgui.engine.classroom`` so the guide cannot drift.

Each lesson (:data:`kdgui.engine.classroom.LESSONS`) carries its title, the explanation a teacher
reads out, its formula, what to look at in the plots, and what it runs: a sweep of one knob or
one run whose compression stages are the comparison. This module renders them as Markdown;
``docs/hooks.py`` inserts the result where ``docs/classroom.md`` says ``<!-- gen: classroom -->``
at every ``mkdocs build``. The settings shown are read from ``Lesson.config()``, the config the
lesson actually runs, not retyped here.

Run it directly to see the Markdown: ``.venv/bin/python docs/gen_classroom.py``.
"""

from __future__ import annotations

from typing import Any

from kdgui.engine.classroom import LESSONS, Lesson
from kdgui.engine.sweep import COMPRESSION_KNOBS, resolve_key, value_label


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _values(lesson: Lesson) -> str:
    """The swept values as the sweep labels them, with the lesson's names for them."""
    parts = []
    for value in lesson.values:
        label = value_label(value)
        name = lesson.value_names.get(label)
        parts.append(f"`{label}`" + (f" – {name}" if name else ""))
    return ("; " if lesson.value_names else ", ").join(parts)


def _step(step: Any) -> str:
    params = ", ".join(f"{k} {v}" for k, v in step.params.items())
    n = step.finetune_epochs
    tune = f"; fine-tuned {n} epoch{'s' if n != 1 else ''}" if n else ""
    return f"`{step.kind}` / `{step.method}` ({params}{tune})"


def what_runs(lesson: Lesson) -> str:
    """One sentence: the sweep (knob and values) or the single run."""
    if lesson.vary:
        key = resolve_key(lesson.vary)
        alias = f" (`{key}`)" if key != lesson.vary else ""
        return (f"A sweep of `{lesson.vary}`{alias} over {_values(lesson)}: "
                f"{lesson.runs} runs, one folder each.")
    if lesson.runner:
        return ("Its own experiment (`kdgui/engine/lessons_kd.py`): small MLPs trained with the "
                "engine's losses on MNIST when its files are found (8,000 train / 2,000 "
                "validation; `--data mnist:ROOT`, see [where they find MNIST]"
                "(#lessons-that-reproduce-a-paper)), else on the embedded digits, which the "
                "log says; the results, with the paper's numbers beside them, go to "
                "`OUT/lesson.json` and `OUT/per_class.png`.")
    return "One run; the compression stages of its pipeline are the comparison."


def render_lesson(lesson: Lesson) -> str:
    """One lesson: heading, explanation, formula, what to look at, what it runs."""
    config = lesson.config()
    lines = [f"### {lesson.title} — `{lesson.name}` {{#lesson-{lesson.name}}}", ""]
    for para in lesson.explanation.split("\n\n"):
        lines += [para.strip(), ""]
    lines += ["```text", lesson.formula, "```", "", "**What to look at**", ""]
    lines += [f"- {item}" for item in lesson.look_at]
    if lesson.published:
        lines += ["", f"**Published figure.** {lesson.published} What this lesson measured "
                  "beside it: [the table below](#measured)."]
    if lesson.runner:
        lines += ["", f"**What it runs.** {what_runs(lesson)}"]
    else:
        lines += ["", f"**What it runs.** {what_runs(lesson)} "
                  f"{config.training.epochs} training epochs on the embedded digits data, "
                  f"{round(100 * config.data.val_fraction)}% of it held out for accuracy."]
    steps = config.compression.steps
    if steps:
        knob = COMPRESSION_KNOBS.get(lesson.vary or "")
        swept = f" The sweep sets the `{knob.param}` of its `{knob.kind}` step." if knob else ""
        lines += ["", "**Compression pipeline** (base config): "
                  + " → ".join(_step(s) for s in steps) + "." + swept]
    if lesson.overrides:
        lines += ["", "**Settings changed from the demo:** "
                  + ", ".join(f"`{o}`" for o in lesson.overrides) + "."]
    lines += ["", "```bash", f"kdgui classroom run {lesson.name} --out lessons/{lesson.name}",
              "```", ""]
    return "\n".join(lines)


def render() -> str:
    """An overview table, then one subsection per lesson, in the order of ``LESSONS``."""
    lines = ["| lesson | name | what it runs |", "|---|---|---|"]
    for lesson in LESSONS:
        runs = (f"sweep of `{lesson.vary}`, {lesson.runs} runs" if lesson.vary
                else "its own experiment, beside the paper" if lesson.runner
                else "one run, compared stage by stage")
        lines.append(f"| [{_cell(lesson.title)}](#lesson-{lesson.name}) | `{lesson.name}` | "
                     f"{runs} |")
    lines.append("")
    lines += [render_lesson(lesson) for lesson in LESSONS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
