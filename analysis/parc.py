"""PARC (Bolya et al., "Scalable Diverse Model Selection for Accessible Transfer Learning",
NeurIPS 2021): its protocol table, Tables 1-3 and Fig. 2a, rendered from the result tables.

PARC's metric is the mean over targets of the Pearson correlation (x100; higher = better)
between an expert's score and its fine-tuned accuracy, as mean and std over probe-set draws
(``parc_draw<i>``; Sec. 3.1, eq. 2). Renderers take the `analysis.context.Context` (and, for a
figure, the .png path) and return what they write.
"""
from __future__ import annotations

import re

import pandas as pd

from analysis.plotting import no_data, panels, save_figure
from analysis.protocols import OVER_DRAWS, RANDOM, correlations, method_order, order_rows, parc_protocol, probes_present
from analysis.tables import KEYS, best_finetune, shots_order, with_meta
from pipeline.layout import is_parc_draw

# Table 2: the factors held fixed inside one correlation (the others vary); the source model's
# pre-training is (source, init), so "-init" experts are other pre-trainings of a source
PARC_MODES = {"source_and_arch": ["target"],  # eq. 2: every expert of one target
              "architecture": ["target", "source", "init"],  # one pre-training, its architectures
              "source": ["target", "arch"],  # one architecture, its pre-trainings
              "target": ["expert"]}  # eq. 5: one expert, correlation across the targets
PEARSON_COLUMNS = ["method", "shots", "pearson_mean", "pearson_std", "n_draws"]
_PCA = re.compile(r"^(?P<base>.+)_pca(?P<dim>\d+)$")


def parc_probes(scores: pd.DataFrame, main_probe: str) -> list[str]:
    """PARC's probe draws (``parc_draw<i>``) of a score table; ``[main_probe]`` when it has none."""
    return sorted(p for p in probes_present(scores) if is_parc_draw(p)) or [main_probe]


def mean_pearson(finetune: pd.DataFrame, scores: pd.DataFrame, probes, mode: str = "source_and_arch") -> pd.DataFrame:
    """PARC's mean Pearson correlation (x100, higher = better) in one evaluation mode of its
    Table 2, per method and shots: per probe draw in ``probes``, the mean over the groups of
    ``PARC_MODES[mode]`` (e.g. per target) of pearsonr(scores, best fine-tuned accuracy) over the
    experts in the group; then mean and std (ddof=0; NaN for one draw) over the draws. Groups with an undefined
    correlation (fewer than 2 experts, constant input) are left out; ``random`` counts as its
    expectation, 0. With mode "source_and_arch" this is `analysis.protocols.parc_protocol`.
    Columns: method, shots, pearson_mean, pearson_std, n_draws."""
    df = scores[scores["probe"].astype(str).isin(list(probes))].dropna(subset=["score"])
    df = with_meta(df.merge(best_finetune(finetune)[KEYS + ["test_accuracy"]], on=KEYS))
    if df.empty:
        return pd.DataFrame(columns=PEARSON_COLUMNS)
    rows = [(m, s, p, 100 * correlations(g["score"], g["test_accuracy"], m == RANDOM, ("pearson",))["pearson"])
            for (m, s, p, *_), g in df.groupby(["method", "shots", "probe", *PARC_MODES[mode]])]
    per_draw = (pd.DataFrame(rows, columns=["method", "shots", "probe", "pc"])
                .groupby(["method", "shots", "probe"], as_index=False)["pc"].mean().dropna(subset=["pc"]))
    out = per_draw.groupby(["method", "shots"], as_index=False)["pc"].agg(**OVER_DRAWS)
    return order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"]))[PEARSON_COLUMNS]


def protocol_table(ctx) -> pd.DataFrame:
    """parc_protocol.csv: `parc_protocol` for every method and strategy of step=evaluate."""
    from analysis.strategies import ranked_methods
    return parc_protocol(ctx.single("finetune"), ranked_methods(ctx))


def parc_table1(ctx) -> pd.DataFrame:
    """Table 1: mean Pearson correlation (x100, mean and std over the probe draws) per method
    and the time per transfer: ``time_ms`` (std ``time_ms_std``) of the score alone, which is what
    PARC reports ("not including feature extraction"), and ``time_with_features_ms`` adding the
    shared forward pass (lower = faster); means over every (expert, target, draw). With PARC's
    Heuristic (`analysis.strategies.heuristics`: no time, N/A as in PARC)."""
    from analysis.strategies import scores_with_heuristics
    ft, sc = ctx.single("finetune"), scores_with_heuristics(ctx)
    probes = parc_probes(sc, ctx.probe_set)
    rows = sc[sc["probe"].isin(probes)]
    rows = rows.assign(time_ms=1000 * rows["seconds"], total_ms=1000 * (rows["seconds"] + rows["feature_seconds"]))
    time = rows.groupby(["method", "shots"], as_index=False).agg(
        time_ms=("time_ms", "mean"), time_ms_std=("time_ms", lambda x: x.std(ddof=0)),
        time_with_features_ms=("total_ms", "mean"))
    return mean_pearson(ft, sc, probes).merge(time, on=["method", "shots"], how="left")


def parc_table2_modes(ctx) -> pd.DataFrame:
    """Table 2: mean Pearson (x100, mean/std over draws) in each evaluation mode: over all
    experts of a target (source_and_arch, eq. 2), over architectures with the pre-training fixed
    (architecture), over pre-trainings with the architecture fixed (source), and over targets with
    the expert fixed (target, eq. 5). Columns <mode>_mean, <mode>_std per mode. With PARC's
    Heuristic (`analysis.strategies.heuristics`)."""
    from analysis.strategies import scores_with_heuristics
    ft, sc = ctx.single("finetune"), scores_with_heuristics(ctx)
    probes, out = parc_probes(sc, ctx.probe_set), None
    for mode in PARC_MODES:
        m = (mean_pearson(ft, sc, probes, mode).drop(columns="n_draws")
             .rename(columns={"pearson_mean": f"{mode}_mean", "pearson_std": f"{mode}_std"}))
        out = m if out is None else out.merge(m, on=["method", "shots"], how="outer")
    return order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"])) if len(out) else out


def parc_table3_depth(ctx) -> pd.DataFrame:
    """Table 3: mean Pearson (x100, mean/std over draws) of every method as is and with the
    "+l" depth term (`analysis.strategies.depth_calibrated`, PARC eq. 6; a reference-code method
    "ref_<m>" z-scored over all its transfers, as PARC's released code)."""
    from analysis.strategies import CALIBRATED, depth_calibrated, scores_with_heuristics
    ft, sc, zoo = ctx.single("finetune"), scores_with_heuristics(ctx), ctx.single("zoo_accuracy")
    probes = parc_probes(sc, ctx.probe_set)
    plain = mean_pearson(ft, sc, probes)
    calibrated = mean_pearson(ft, depth_calibrated(sc, zoo, probe=None), probes)
    calibrated["method"] = calibrated["method"].str.removesuffix(CALIBRATED)
    out = plain.merge(calibrated, on=["method", "shots"], suffixes=("", "_l"))
    out = out.rename(columns={"pearson_mean": "original_mean", "pearson_std": "original_std",
                              "pearson_mean_l": "depth_mean", "pearson_std_l": "depth_std"})
    return out[["method", "shots", "original_mean", "original_std", "depth_mean", "depth_std", "n_draws"]]


def pca_variants(methods) -> dict[str, tuple[str, str]]:
    """method -> (base method, PCA dimension or "full") for every base method that has
    ``<base>_pca<d>`` variants among ``methods`` (the base itself is "full")."""
    found = {m: (x["base"], x["dim"]) for m in methods if (x := _PCA.match(m))}
    bases = {b for b, _ in found.values()}
    return {**found, **{b: (b, "full") for b in bases if b in set(methods)}}


def parc_fig2_pca(ctx, out_png) -> pd.DataFrame:
    """Fig. 2a: mean Pearson (x100, mean and std over draws) against the PCA dimension the
    features were reduced to, for every method with ``_pca<d>`` variants ("full": unreduced)."""
    ft, sc = ctx.single("finetune"), ctx.single("scores")
    variants = pca_variants(sc["method"].unique())
    sc = sc[sc["method"].isin(list(variants))]
    pc = mean_pearson(ft, sc, parc_probes(sc, ctx.probe_set))
    pc.insert(0, "pca_dim", pc["method"].map(lambda m: variants[m][1]))
    pc.insert(0, "base", pc["method"].map(lambda m: variants[m][0]))
    dims = sorted({d for d in pc["pca_dim"] if d != "full"}, key=int) + ["full"] * bool((pc["pca_dim"] == "full").any())
    data = pc.sort_values(["base", "shots", "pca_dim"], key=lambda c: c.map({d: i for i, d in enumerate(dims)})
                          if c.name == "pca_dim" else c).reset_index(drop=True)
    shots = shots_order(data["shots"])
    fig, axes = panels(len(shots), max(4.0, 0.6 * len(dims) + 2.5), 3.8)
    for ax, shot in zip(axes, shots):
        for i, (base, d) in enumerate(data[data["shots"] == shot].groupby("base")):
            d = d.set_index("pca_dim").reindex(dims)
            ax.errorbar(range(len(dims)), d["pearson_mean"], yerr=d["pearson_std"].fillna(0), marker="o",
                        capsize=2, color=f"C{i}", label=base)
        ax.set_xticks(range(len(dims)), dims)
        ax.set_xlabel("PCA dimension f")
        ax.set_ylabel("mean Pearson correlation (x100)")
        ax.set_title(f"shots: {shot}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not shots:
        no_data(axes[0], "_pca<d> score variants")
    fig.suptitle("Feature reduction with PCA before scoring")
    return save_figure(fig, data, out_png)
