"""Deshpande et al. Table 3: computation cost of brute-force fine-tuning, of fine-tuning the top-k
selected experts, and of computing the selection scores, as multiples of fine-tuning the
reference expert."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.protocols import RANDOM, expected_topk_sum, method_order, order_rows, probe_rows, reference_accuracy
from analysis.tables import KEYS, best_finetune, shots_order


def compute_cost(finetune_df: pd.DataFrame, scores_df: pd.DataFrame, reference_expert: str,
                 k: int, probe: str) -> pd.DataFrame:
    """Deshpande Table 3 in long form: per shots, averaged over targets, columns shots, item,
    method, multiple (lower = cheaper; 1 = one fine-tune of the reference expert).

    items: "brute_force" (all experts' fine-tunes; method ""), f"top{k}_finetune" (the
    method's top-k experts, expected cost under uniform tie-breaking, `random` as all
    tied), "score" (per expert: shared forward pass feature_seconds + score seconds).
    All divided by the reference expert's fine-tune seconds (whole lr grid) on the same
    (target, shots). Scores on the probe set ``probe`` only (the main one). Raises AnalysisError
    for an unknown reference expert.
    """
    best = best_finetune(finetune_df)
    reference_accuracy(best, reference_expert)  # raises a clean error if the expert is unknown
    ref_sec = best[best["expert"] == reference_expert].set_index(["target", "shots"])["seconds"]
    rows = []
    for (target, shots), grp in best.groupby(["target", "shots"], sort=False):
        if (target, shots) not in ref_sec.index:
            continue  # no reference run to normalise by
        rows.append({"target": target, "shots": shots, "item": "brute_force", "method": "",
                     "seconds": grp["seconds"].sum()})
    sc = probe_rows(scores_df, probe).dropna(subset=["score"])
    ft = sc.merge(best[KEYS + ["seconds"]].rename(columns={"seconds": "ft_seconds"}), on=KEYS)
    for (method, target, shots), grp in ft.groupby(["method", "target", "shots"], sort=False):
        s = np.zeros(len(grp)) if method == RANDOM else grp["score"].to_numpy(dtype=float)
        rows.append({"target": target, "shots": shots, "item": f"top{k}_finetune", "method": method,
                     "seconds": expected_topk_sum(s, grp["ft_seconds"], k)})
    for (method, target, shots), grp in sc.groupby(["method", "target", "shots"], sort=False):
        rows.append({"target": target, "shots": shots, "item": "score", "method": method,
                     "seconds": (grp["feature_seconds"] + grp["seconds"]).sum()})
    cols = ["shots", "item", "method", "multiple"]
    if not rows:
        return pd.DataFrame(columns=cols)
    per_target = pd.DataFrame(rows)
    ref = [ref_sec.get(key, np.nan) for key in zip(per_target["target"], per_target["shots"])]
    per_target["multiple"] = per_target["seconds"] / np.asarray(ref, dtype=float)
    out = (per_target.dropna(subset=["multiple"])
           .groupby(["shots", "item", "method"], as_index=False, sort=False)["multiple"].mean())
    # Table 3 order: shots as in the paper, then brute force, top-k fine-tuning, score cost.
    return order_rows(out, shots=shots_order(out["shots"]), item=["brute_force", f"top{k}_finetune", "score"],
                      method=[""] + method_order(out["method"]))[cols]
