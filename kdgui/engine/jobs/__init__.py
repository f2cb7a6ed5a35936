"""The engine's one front door: every job a front end can start.

The CLI, the window and the Python API import the engine only through this package (plus
``kdgui.core`` for config, events and errors); a layering test enforces it. Long jobs
(``run``, ``compress``, ``sensitivity``, ``sweep``, ``export_run``, ...) are generators of the
same plain events (``kdgui.core.events``); short ones (inspect a file, preview data, probe
shapes) are plain functions that return plain data.

Names resolve lazily so that importing the facade does not import torch: the window must be
able to import it on the UI thread, and ``kdgui --help`` must stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> "submodule:attribute" (submodules of this package). One line per job; a new
#: job is its module plus its line here.
_EXPORTS: dict[str, str] = {
    "available_devices": "probes:available_devices",
    "data_preview": "probes:data_preview",
    "derive_spec": "probes:derive_spec",
    "explorer_data": "probes:explorer_data",
    "inspect_model": "probes:inspect_model",
    "model_source_for_path": "probes:model_source_for_path",
    "model_sources": "probes:model_sources",
    "netron_info": "probes:netron_info",
    "netron_server": "probes:netron_server",
    "pairing_probe": "probes:pairing_probe",
    "prepare_model": "probes:prepare_model",
    "softmax_at_temperature": "probes:softmax_at_temperature",
    "warm_up": "probes:warm_up",
    "write_report": "probes:write_report",
    # long jobs (generators of kdgui.core.events) and what their front ends need with them
    "run": "run_job:run",
    "distill_modules": "run_job:distill_modules",
    "process_rank": "run_job:process_rank",
    "compress": "compress_job:compress",
    "CompressRequest": "compress_job:CompressRequest",
    "quantize_choices": "compress_job:quantize_choices",
    "compression_steps": "compress_job:compression_steps",
    "sensitivity": "sensitivity_job:sensitivity",
    "sensitivity_of_run": "sensitivity_job:sensitivity_of_run",
    "sensitivity_analysis": "sensitivity_job:analyze",
    "sweep": "sweep_job:sweep",
    "diff_models": "diff_job:diff_models",
    "compare_models": "compare_job:compare_models",
    "compare_source": "compare_job:compare_source",
    "measure_model": "compare_job:measure_model",
    "CHANGE_KINDS": "compare_job:CHANGE_KINDS",
    "OVERLAYS": "compare_job:OVERLAYS",
    "bias_correction": "bias_job:bias_correction",
    "parse_vary": "sweep_job:parse_vary",
    "pareto_front": "sweep_job:pareto_front",
    "add_pareto_flags": "sweep_job:add_pareto_flags",
    "load_sweep": "sweep_job:load_sweep",
    "SWEEP_SIZE_KEYS": "sweep_job:SIZE_KEYS",
    "SweepStarted": "sweep_job:SweepStarted",
    "SweepRunEvent": "sweep_job:SweepRunEvent",
    "SweepRunDone": "sweep_job:SweepRunDone",
    "SweepFinished": "sweep_job:SweepFinished",
    "export_run": "export_job:export_run",
    "check_setup": "preflight:check_setup",
    "export_formats": "export_job:export_formats",
    "run_stages": "export_job:run_stages",
    "LESSONS": "lessons:LESSONS",
    "get_lesson": "lessons:get_lesson",
    "check_lesson_data": "lessons:check_lesson_data",
    "run_lesson": "lessons:run_lesson",
    "load_model": "models:load_model",
    "load_data": "models:load_data",
    "model_reference": "models:model_reference",
}


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'kdgui.engine.jobs' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
