"""The CIFAR students and teachers of the distillation literature, as presets.

The reference counts are what the CRD/RepDistiller code's models have at 100 classes on 3×32×32
(counted from that code: ``resnet8x4(num_classes=100)`` and so on); the tables of CRD, DKD and
DIST report them rounded (1.23 M, 7.43 M, 0.28 M, 0.86 M, 0.70 M, 2.26 M).
"""

from __future__ import annotations

import pytest

from kdgui.core.presets import PRESETS
from kdgui.core.student_shapes import infer
from kdgui.core.student_spec import Residual

REFERENCE = {
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "resnet20": 278_324,
    "resnet56": 861_620,
    "wrn-16-2": 703_284,
    "wrn-40-2": 2_255_156,
}
CIFAR = (3, 32, 32)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_parameter_counts_match_the_reference_code_within_one_percent(name: str) -> None:
    report = infer(PRESETS[name].build(CIFAR, 100, 1.0), CIFAR, 100)
    assert report.ok, [e.one_line() for e in report.errors]
    assert report.output_shape == (100,)
    assert report.total_params == pytest.approx(REFERENCE[name], rel=0.01)
    if name.startswith("resnet"):  # the same layers as the reference: the same count exactly
        assert report.total_params == REFERENCE[name]


@pytest.mark.parametrize(("name", "blocks", "final"), [
    ("resnet8x4", 3, (256, 8, 8)), ("resnet32x4", 15, (256, 8, 8)), ("resnet20", 9, (64, 8, 8)),
    ("resnet56", 27, (64, 8, 8)), ("wrn-16-2", 6, (128, 8, 8)), ("wrn-40-2", 18, (128, 8, 8)),
])
def test_depth_and_the_last_feature_map_follow_the_papers(name, blocks, final) -> None:
    spec = PRESETS[name].build(CIFAR, 100, 1.0)
    assert sum(isinstance(layer, Residual) for layer in spec.layers) == blocks
    report = infer(spec, CIFAR, 100)
    maps = [r.out_shape for r in report.layers if r.depth == 0 and len(r.out_shape or ()) == 3]
    # 32×32 through three stages: 32, 16, 8 (no strided stem on CIFAR-sized inputs)
    assert maps[0][1:] == (32, 32) and maps[-1] == final


def test_teachers_are_bigger_than_their_students_and_width_scales() -> None:
    def size(name: str, width: float = 1.0) -> int:
        return infer(PRESETS[name].build(CIFAR, 100, width), CIFAR, 100).total_params

    for teacher, student in [("resnet32x4", "resnet8x4"), ("resnet56", "resnet20"),
                             ("wrn-40-2", "wrn-16-2")]:
        assert size(teacher) > 2.5 * size(student)
    assert size("resnet8x4", 0.5) < size("resnet8x4") / 3
