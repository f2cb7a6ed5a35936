"""The demo's digits are read from scikit-learn's data file without importing scikit-learn (whose
import was most of the demo's time before step 1), and equal what ``load_digits`` returns."""

from __future__ import annotations

import torch


def test_digits_from_the_file_equal_sklearns_load_digits(monkeypatch) -> None:
    from sklearn.datasets import load_digits

    from kdgui.engine.data import digits

    raw = digits.load_digits_raw()
    ds = load_digits()
    assert torch.equal(raw.images, torch.as_tensor(ds.images, dtype=torch.float32).unsqueeze(1))
    assert torch.equal(raw.labels, torch.as_tensor(ds.target, dtype=torch.int64))
    # Without the file (another sklearn layout), the same data through load_digits.
    monkeypatch.setattr(digits.importlib.util, "find_spec", lambda name: None)
    again = digits.load_digits_raw()
    assert torch.equal(again.images, raw.images) and torch.equal(again.labels, raw.labels)
