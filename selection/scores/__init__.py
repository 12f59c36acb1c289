"""Model-selection scores: how well a pre-trained model should transfer to a target task.

Every score is a pure function called with keyword arguments only (numpy arrays in,
one Python ``float`` out, higher = predicted to transfer better) and is registered in
``SCORES`` under its method name. ``compute_score(name, **inputs)`` lets a caller hand
over everything it has (features, labels, probs, seed, ...): each score receives only
the keyword arguments its signature names.

Inputs:
  features  (N, D) penultimate-layer features of the target images.
  labels    (N,)   target labels, arbitrary hashable values (relabelled internally).
  probs     (N, Z) source-class probabilities on the target images (rows sum to 1).
  seed      int    for the random baseline.

To add a score, decorate a keyword-only function with ``@register("name")`` (from
``selection.scores.registry``) and run its array inputs through ``validate``: in a module
imported below, or in your own file listed under the benchmark config's
``selection.plugins`` (``load_plugins``; README, "Your own selection score").
"""
from selection.scores.registry import SCORES, compute_score, load_plugins, register  # noqa: F401
from selection.scores.baselines import random  # noqa: F401,E402
from selection.scores.label_correlation import lfc, parc  # noqa: F401,E402
from selection.scores.source_probs import leep  # noqa: F401,E402
from selection.scores import (  # noqa: F401,E402  (each module registers its scores)
    clustering,
    domain,
    etran,  # ETran's parts etran_energy, etran_lda (the combined etran is zoo-level: zoo_level)
    evidence,
    gradient,
    ncti,  # NCTI's parts ncti_seli, ncti_ncc, ncti_vc (the combined ncti is zoo-level: zoo_level)
    ot_nce,
    pactran,
    ped,  # the `ped` feature remapping (an option of feature scores, no score of its own)
    probes,
    representation,
    separability,
    sparsity,
)
from selection.scores.zoo_level import ZOO_METHODS, combine  # noqa: F401,E402  (methods combined across the zoo)
