"""`kdgui export` on a run whose model files were damaged: exit 2 and one line, never a
traceback; an internal error's traceback shows only with --debug."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdgui.cli.main import main
from kdgui.core.events import RunFailed


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["demo", "--out", str(out), "--epochs", "1"]) == 0
    return out


def test_a_damaged_student_file_is_exit_2_with_one_line(finished_run, tmp_path, capsys) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    student = run / "student" / "student.safetensors"
    student.write_bytes(os.urandom(4096))
    code = main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "damaged" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "x" / "model.onnx").exists()


def test_an_internal_error_prints_one_line_and_its_traceback_only_with_debug(capsys) -> None:
    failed = RunFailed(run_dir="", error={"message": "internal error: ValueError: boom",
                                          "traceback": "Traceback (most recent call last):\n  x"},
                       internal=True)
    from kdgui.cli.main import guarded

    def handler(_args):
        raise failed.to_exception()

    assert guarded(handler, None, debug=False) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "boom" in err and "Traceback" not in err
    with pytest.raises(Exception, match="boom"):
        guarded(handler, None, debug=True)
    assert "Traceback (most recent call last)" in capsys.readouterr().err
