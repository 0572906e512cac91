"""The heads study on real handwritten digits: does the ranking hold beyond ``shapes``?

The same twelve rows as ``heads`` (six heads, each from scratch and from the
``pre64`` classification pre-training on the embedded objects), the same backbone,
budget and seeds, on ``digits`` instead of ``shapes``: scikit-learn's 1797
handwritten 8×8 digits (UCI), scaled up and scattered on noisy canvases, 10
classes, validation scenes drawn only from held-out handwriting
(`jaxheads.data.DigitsDataset`). The pre-training stage classifies other images
than the detector then sees, as ImageNet is not VOC.

Command::

    jaxheads compare --config heads_digits --workdir runs/heads_digits
    jaxheads compare --config heads_digits --quick --workdir /tmp/digits_quick

Run time: ``--quick`` (the heads study's quick budget: 12 runs of 100 steps at
64² and a 40-step pre-training) measured 5 min 56 s on the 2-core CPU with two
training runs beside it at ``nice 19`` (2026-12-04); every row trained, was
evaluated and reported, all near mAP50 0 (0.000-0.004) as on ``shapes``: 100 steps
rank nothing. Full profile
(96×96, batch 32, 1000 steps, 2 seeds: 24 runs and the 600-step pre-training):
estimated at about 2 h 10 min there from the heads study's runs (4-6 min a run
alone; a digits scene costs what a shapes scene costs), not yet measured.

Expected result: not run yet; until it has been, this study states only its
design. The question it answers: whether the heads that predict per location
(``yolov2_passthrough`` > ``yolov2`` > ``yolov1_percell``) stay ahead of Flatten +
Dense, the locally connected head and GAP on real handwriting, and whether
pre-training on other images helps them there as it does on ``shapes``.
"""

from __future__ import annotations

import dataclasses

from jaxheads.study import StudyConfig, load_study, with_profile

DESCRIPTION = (
    "The heads study's six heads, from scratch and from the pre64 pre-training, on `digits`: "
    "real handwritten digits (scikit-learn's UCI digits) scattered on noisy canvases, 10 "
    "classes, validation on held-out handwriting. Does the ranking hold beyond `shapes`?"
)


def get_config(profile: str = "full") -> StudyConfig:
    """The heads study on ``digits``; ``profile`` is ``"full"`` or ``"quick"``."""
    heads = load_study("heads").get_config("full")
    where = (
        "--quick --workdir /tmp/digits_quick"
        if profile == "quick"
        else "--workdir runs/heads_digits"
    )
    config = dataclasses.replace(
        heads,
        name="heads_digits",
        description=DESCRIPTION,
        command=f"jaxheads compare --config heads_digits {where}",
        budget=heads.budget.replace(dataset="digits"),
        paper={},  # the papers' VOC numbers say nothing about digits
    )
    return with_profile(config, profile)
