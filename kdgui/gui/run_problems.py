"""What went wrong in a run, in words: failed exports and the engine's errors and warnings.

The Run panel lists them live (from events) and the Results panel for a reopened run (from its
summary and ``metrics.jsonl``); one owner so both show the same list. No Qt here.
"""

from __future__ import annotations

from typing import Any

from kdgui.core.events import ArtifactEvent, Event, LogEvent


def export_failure(what: str, details: dict[str, Any] | None) -> str | None:
    """The message for an ``export:<fmt>`` artifact whose export failed, else None."""
    if not what.startswith("export:") or not isinstance(details, dict) or \
            details.get("ok", True) is not False:
        return None
    fmt = what.partition(":")[2]
    return f"{fmt} export failed: {details.get('error') or 'no file written'}"


def summary_problems(summary: dict[str, Any]) -> list[str]:
    """Failed exports recorded in a run's summary (``exports`` entries with ``ok: false``)."""
    out = []
    for record in summary.get("exports") or []:
        if isinstance(record, dict) and record.get("ok") is False:
            out.append(f"{record.get('format', '?')} export failed: "
                       f"{record.get('error') or 'no file written'}")
    return out


def run_problems(summary: dict[str, Any], events: list[Event]) -> list[str]:
    """Everything that went wrong in a finished run: failed exports, then errors and warnings
    the engine logged (a reopened run shows the same list as the live one)."""
    out = summary_problems(summary)
    for ev in events:
        text = None
        if isinstance(ev, LogEvent) and ev.level in ("error", "warning"):
            text = ev.message.strip()
        elif isinstance(ev, ArtifactEvent):
            text = export_failure(ev.what, ev.details)
        if text and not any(text in p or p in text for p in out):
            out.append(text)
    return out


__all__ = ["export_failure", "run_problems", "summary_problems"]
