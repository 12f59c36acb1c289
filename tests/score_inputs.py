"""Seeded score inputs from a stored recipe: the one generator behind tests/data/reference_more.json and
tests/data/reference_exact.json (the scripts that produced them drew in this order; each recipe uses
only its own keys, so every stored value's inputs are regenerated exactly)."""
import numpy as np


def make_inputs(recipe: dict) -> dict:
    """features (n, d), labels (n,) and, when the recipe names them, probe_features, probs (n, z),
    source_features / source_labels and gradients (n, p)."""
    rng = np.random.default_rng(recipe["seed"])
    n, d, c = recipe["n"], recipe["d"], recipe["c"]
    labels = rng.integers(0, c, n)
    labels[:c] = np.arange(c)
    centers = rng.normal(size=(c, d))
    features = rng.normal(size=(n, d)) + recipe.get("spread", 1.0) * centers[labels]
    if recipe.get("relu"):
        features = np.maximum(features, 0.0)
    if recipe.get("dup_cols"):      # rank-deficient: repeated columns
        features[:, -recipe["dup_cols"]:] = features[:, :recipe["dup_cols"]]
    if recipe.get("dup"):           # exact duplicate rows with other labels
        k = recipe["dup"]
        features[-k:] = features[:k]
        labels[-k:] = (labels[:k] + 1) % c
    out = {"features": features, "labels": labels}
    if "d_probe" in recipe:
        w = rng.normal(size=(d, recipe["d_probe"])) / np.sqrt(d)
        out["probe_features"] = np.tanh(features @ w) + 0.5 * rng.normal(size=(n, recipe["d_probe"]))
    if "z" in recipe:
        logits = (recipe.get("signal", 2.0) * rng.normal(size=(c, recipe["z"]))[labels]
                  + rng.normal(size=(n, recipe["z"])))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        if recipe.get("zero_z") is not None:
            p[:, recipe["zero_z"]] = 0.0
        out["probs"] = p / p.sum(axis=1, keepdims=True)
    if "n_source" in recipe:
        ns, cs = recipe["n_source"], recipe["c_source"]
        src_labels = rng.integers(0, cs, ns)
        src_labels[:cs] = np.arange(cs)
        out["source_labels"] = src_labels
        out["source_features"] = rng.normal(size=(ns, d)) + rng.normal(size=(cs, d))[src_labels]
        if recipe.get("float32"):
            out["features"] = out["features"].astype(np.float32)
            out["source_features"] = out["source_features"].astype(np.float32)
    if "p" in recipe:
        out["gradients"] = rng.normal(size=(n, recipe["p"])) + rng.normal(size=(c, recipe["p"]))[labels]
    return out
