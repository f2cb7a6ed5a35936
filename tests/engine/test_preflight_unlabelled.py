"""The window's check before Run on a folder of unlabelled images only (classes from the teacher).

It said 'The teacher predicts 10 classes but scans has 0' and kept Run disabled, while
``kdgui run`` on the same folder works (session.prepare takes the classes from the teacher)."""

from __future__ import annotations

from kdgui.core.config import ExperimentConfig
from kdgui.engine.jobs import check_setup
from tests.engine.test_unlabelled_folder import write_digits


def test_check_setup_takes_the_classes_of_an_images_only_folder_from_the_teacher(tmp_path):
    write_digits(tmp_path / "scans", 30)
    config = ExperimentConfig.model_validate(
        {"data": {"spec": f"folder:{tmp_path / 'scans'}"}, "teacher": {"path": "demo"}})
    result = check_setup(config)
    assert result["ok"], result
    assert result["num_classes"] == 10
