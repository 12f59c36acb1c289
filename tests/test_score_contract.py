"""The contract of every registered score, one test per score (selection.scores.SCORES): keyword-only
inputs named from the pipeline's caches, one Python float out, the same value for the same inputs,
and NaN features refused with a ValueError (never ranked as signal)."""
import inspect

import numpy as np
import pytest

from selection.scores import SCORES, compute_score

INPUTS = {"features", "labels", "probs", "gradients", "probe_features", "source_features", "source_labels", "seed"}


def _everything(rng: np.random.Generator) -> dict:
    labels = np.repeat(np.arange(4), 12)
    features = rng.normal(size=(48, 16)) + 2.0 * labels[:, None]
    logits = rng.normal(size=(48, 6)) + labels[:, None] % 6
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return dict(features=features, labels=labels, probs=probs, seed=7, gradients=features @ rng.normal(size=(16, 32)),
                probe_features=features[:, ::-1] + rng.normal(size=(48, 16)),
                source_features=rng.normal(size=(60, 16)) + 1.0, source_labels=np.repeat(np.arange(6), 10))


@pytest.mark.parametrize("name", sorted(SCORES))
def test_score_contract(name):
    params = inspect.signature(SCORES[name]).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values()), "scores take keyword arguments only"
    required = {p for p, spec in params.items() if spec.default is spec.empty}
    assert required and required <= INPUTS, f"inputs {required - INPUTS} are not cache inputs"
    first = compute_score(name, **_everything(np.random.default_rng(0)))
    again = compute_score(name, **_everything(np.random.default_rng(0)))
    assert type(first) is float and np.isfinite(first)
    assert first == again
    if "features" in required:
        bad = _everything(np.random.default_rng(0))
        bad["features"][3, 2] = np.nan
        with pytest.raises(ValueError):
            compute_score(name, **bad)
