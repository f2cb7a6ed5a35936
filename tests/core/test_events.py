"""Events are plain data and round-trip through JSON; RunControl works across threads."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from kdgui.core.events import EpochEvent, RunControl, StepEvent, event_from_dict


def test_events_round_trip_through_json() -> None:
    e = EpochEvent(epoch=1, step=10, train_loss=0.5, train_accuracy=0.8, val_accuracy=0.7,
                   teacher_accuracy=0.9, agreement=0.75, layer_names=["a", "b"],
                   sparsity=np.array([0.0, 0.5], dtype=np.float32), duration_s=1.0)
    line = json.dumps(e.to_dict())
    back = event_from_dict(json.loads(line))
    assert isinstance(back, EpochEvent)
    assert back.to_dict() == e.to_dict()  # every field, the time included
    assert back.sparsity.dtype == np.float32
    np.testing.assert_allclose(back.sparsity, [0.0, 0.5])
    s = StepEvent(step=1, epoch=1, losses={"total": np.float32(1.5)}, lr=0.1, samples_per_s=1.0,
                  progress=0.1, eta_s=3.0)
    assert json.loads(json.dumps(s.to_dict()))["losses"]["total"] == 1.5


def test_pause_blocks_until_resume_and_stop_releases() -> None:
    control = RunControl()
    control.pause()
    released = threading.Event()

    def worker() -> None:
        control.wait_while_paused(poll_s=0.01)
        released.set()

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.1)
    assert not released.is_set()
    control.resume()
    t.join(1)
    assert released.is_set()
    control.pause()
    control.stop()
    control.wait_while_paused(poll_s=0.01)  # returns at once
    assert control.stop_requested
