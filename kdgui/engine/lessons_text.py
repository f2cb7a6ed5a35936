"""The text of issue 17's lessons (missing digit, unlabelled transfer), as plain dicts.

:mod:`kdgui.engine.classroom` turns them into ``Lesson`` objects; they live here (no torch) so
that the lesson list stays importable by the window without loading torch, while the
experiments themselves are in :mod:`kdgui.engine.lessons_kd`.
"""

from __future__ import annotations

from typing import Any

KD_LESSONS: tuple[dict[str, Any], ...] = (
    {
        "name": "missing-digit",
        "title": "The missing digit (Hinton et al. 2015)",
        "explanation": (
            "A teacher is trained on every digit. A student is then distilled on a transfer "
            "set from which every 3 has been removed (data.exclude_classes: [3]): it never "
            "sees a 3. Yet the teacher's soft targets on the other digits say how much each "
            "image resembles a 3 — a 5 or an 8 that looks a bit like a 3 carries that "
            "information — and the student learns to recognise most 3s.\n\n"
            "What it lacks is confidence: nothing in training ever raised its output for "
            "class 3, so its bias is too low. The paper raised it by 3.5 by hand. Here the "
            "shift is computed from the data: the smallest one that makes the student predict "
            "'3' as often as the teacher does on the validation images (no labels used). A "
            "second student trained on the same set from the labels alone gets no 3 right.\n\n"
            "Data: MNIST when its files are found (8,000 train / 2,000 validation from the "
            "10,000 test images; give a folder with --data mnist:ROOT or KDGUI_MNIST_ROOT). "
            "Without MNIST it runs on the embedded 8×8 digits and says so: the 3s still come "
            "back, but fewer (measured: 70% right without the shift, 78% with it, on 37 "
            "threes) — the 85% and more of this lesson needs MNIST."
        ),
        "formula": ("L = 0.1·CE(y, softmax(z_s)) + 0.9·T²·KL(p_t ‖ p_s), T = 8;   "
                    "b_3 ← b_3 + Δ with share(argmax = 3) = teacher's share"),
        "look_at": (
            "Accuracy on 3s: labels only (0%), distilled (paper: 86.8%, 877 of 1,010 right), "
            "distilled with the bias raised (paper: 98.6%).",
            "The computed bias shift beside the paper's 3.5.",
            "The per-class bars (the window's chart, per_class.png): every other digit stays "
            "as good; only the 3 bar moves.",
        ),
        "runner": "kdgui.engine.lessons_kd:run_missing_digit",
        "published": ("Hinton, Vinyals & Dean 2015, §3 (MNIST test set, 10,000 images): the "
                      "student distilled without 3s made 206 errors, 133 of them on the 1,010 "
                      "threes (86.8% right); with the class-3 bias raised by 3.5, 109 errors, "
                      "14 on threes (98.6% right)."),
    },
    {
        "name": "unlabelled",
        "title": "Distilling from unlabelled data",
        "explanation": (
            "Labels are expensive; images are not. A student trained on 100 labelled images "
            "(50 on the digits) is compared with the same student distilled on the whole "
            "training split with its labels hidden (data.labelled_count: 100): the teacher's "
            "outputs teach on every image, and the hard loss sees only the same 100 labels "
            "(unlabelled samples carry label −1 and are skipped).\n\n"
            "The teacher was trained with labels — it stands for a model trained elsewhere, "
            "whose knowledge we transfer without labelling anything new.\n\n"
            "Data: MNIST when its files are found (8,000 images, 100 labelled; --data "
            "mnist:ROOT or KDGUI_MNIST_ROOT), else the embedded 8×8 digits with 50 labels "
            "(measured there: 66% → 91%), and the lesson says which it used."
        ),
        "formula": "L = 0.5·mean over labelled CE(y, softmax(z_s)) + 0.5·T²·KL(p_t ‖ p_s), T = 4",
        "look_at": (
            "Validation accuracy: 100 labels alone against distilled on unlabelled images.",
            "The gap to the teacher: how much of the teacher's accuracy needs no labels.",
        ),
        "runner": "kdgui.engine.lessons_kd:run_unlabelled",
        "published": ("The closest published figure (Hinton et al. 2015, §6, Table 5, speech "
                      "frames; soft targets on 3% of the training data rather than unlabelled "
                      "images): 44.5% test accuracy trained on the hard labels of 3% of the "
                      "data, 57.0% on the soft targets of the same 3%, 58.9% with all the data "
                      "— the soft targets recovered almost all of the gap."),
    },
)

__all__ = ["KD_LESSONS"]
