"""The ``as_reference`` option shared by every score whose default departs from its reference code.

A score's default follows its paper, or corrects a bug of the public code that produced the
published numbers; ``as_reference=True`` reproduces that code's value instead, quirks included,
so that a published comparison can compare like with like. Each score's docstring names the
reference (repository, function, commit) and what the option changes. Where the reference
yields NaN on a degenerate input (0/0, log 0), the reference variant returns NaN too: the
pipeline treats NaN as "excluded", never as a signal.
"""
from __future__ import annotations

import numpy as np

# Commits of the public reference code that the ``as_reference`` variants reproduce.
PARC_REPO = "dbolya/parc methods.py @ ddfca43a84d35328897d107d6f86e860b11801ce"
LOGME_REPO = "thuml/LogME LogME.py @ 56551ca94a3295bcc37e6a01b1291911af985f07"
TLLIB_REPO = "thuml/Transfer-Learning-Library tllib/ranking @ c4aa59eb565650a552b809411601d0589efbbfe4"
SFDA_REPO = "TencentARC/SFDA metrics.py @ 3b7edf76bd682acb1eba4f4c5eb7ea7f3f7f6c59"
DOMAIN_REPO = ("richardaecn/cvpr18-inaturalist-transfer DomainSimilarityDemo.ipynb "
               "@ d59d522937da7e752436863151d7bcc9f26c749a")


def check_as_reference(value) -> bool:
    """``as_reference`` must be a real bool (a YAML typo such as "yes" must not pass silently)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"as_reference must be true or false; got {value!r}")
    return bool(value)


def reference_value(value) -> float:
    """The reference variant's result as a float: NaN where the reference gives NaN or inf
    (degenerate input), never an exception, so the published comparison drops it as the paper's
    code would have produced it."""
    value = float(value)
    return value if np.isfinite(value) else float("nan")
