"""Schedule 'multistep': the CIFAR schedule of CRD/DKD/DIST (x0.1 at epochs 150, 180, 210 of 240)."""

from __future__ import annotations

import pytest
import torch

from kdgui.core.config import TrainingConfig
from kdgui.engine.training import make_scheduler


def test_the_rate_drops_tenfold_at_each_fraction_of_the_training() -> None:
    cfg = TrainingConfig(schedule="multistep", lr=0.05)
    assert cfg.lr_milestones == [0.625, 0.75, 0.875] and cfg.lr_decay == 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, total_steps=240)
    rates = []
    for _ in range(240):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[149] == pytest.approx(0.05) and rates[150] == pytest.approx(0.005)
    assert rates[180] == pytest.approx(0.0005) and rates[239] == pytest.approx(0.00005)


@pytest.mark.parametrize("bad", [[0.0], [1.0], [0.5, 1.5]])
def test_milestones_outside_the_training_are_refused_with_the_fix(bad) -> None:
    with pytest.raises(ValueError, match="fractions of the training between 0 and 1"):
        TrainingConfig(schedule="multistep", lr_milestones=bad)
