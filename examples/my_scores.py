"""A user's own selection score: list this file under `selection.plugins` and its name under
`selection.methods` in a benchmark config (README, "Your own selection score")."""
import numpy as np

from selection.scores.registry import register, validate


@register("class_margin")
def class_margin(*, features, labels) -> float:
    """Between-class over within-class scatter of the features (higher = more separable)."""
    x = validate(features=features, labels=labels)
    means = np.stack([x.features[x.labels == c].mean(0) for c in range(x.n_classes)])
    within = np.mean([x.features[x.labels == c].var(0).sum() for c in range(x.n_classes)])
    return float(means.var(0).sum() / max(within, 1e-12))
