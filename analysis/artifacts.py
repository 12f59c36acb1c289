"""The remaining tables and figures of the four papers, rendered from the result tables.

``ARTIFACTS`` maps a stable name to an `Artifact`: its ``kind`` ("figure": written as
``<results>/figures/<name>.png`` plus the data behind it as ``<name>.csv``; "table":
``<results>/tables/<name>.csv``), the result tables it ``needs``, whether it exists only when the
benchmark has a multi-domain expert (``multidomain``), and ``render(ctx, out_path)``, which writes
the artifact and returns the data written. ``ctx`` holds the result tables as
`analysis.tables.load_table` reads them ("zoo", "finetune" (one row per learning rate), "scores",
"multidomain"), "generalist" (the reference expert id, e.g. ``resnet-imagenet``), "top_k" and
optionally "pools" (Which Model's model pools: name -> `analysis.strategies.Pool`, e.g.
``{"all": None, "resnet": arch_pool("resnet")}``; default every expert).

- Deshpande et al.: table1_zoo_accuracy, table2_multidomain, table3_compute (Table 3 shaped as the
  paper: compute_cost.csv is long), fig1_error_vs_shots, fig3_multidomain_finetune,
  fig5_multidomain_selection, fig7_probe_size. Figs. 2, 4, 6 are in analysis.figures.
- PARC (Bolya et al.): parc_table1, parc_table2_modes, parc_table3_depth, parc_fig2_pca.
- Which Model to Transfer?: wm_regret_b12 (Figs. 3-4), wm_zero_regret (Fig. 7).
- Guided Recommendation's Table 2 is analysis.recommender.table2 (gr_table2.csv).

Importing this module is cheap (pandas, no scipy or matplotlib): the Snakefile imports
`artifact_names` to declare outputs; the renderers import analysis.protocols / analysis.figures.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from math import comb
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from analysis.tables import KEYS, AnalysisError, best_finetune, parse_expert, shots_order, split_zoos

INPUTS = ("zoo", "finetune", "scores", "multidomain")
MD_VARIANTS = ("shared", "multi_bn", "adapter")  # Deshpande Table 2's column order
PROBE_LABELS = {"default": "25 per class", "per_class_50": "50 per class", "all": "all images"}  # Fig. 7
# PARC Table 2: the factors held fixed inside one correlation (the others vary); the source
# model's pre-training is (source, init), so "-init" experts are other pre-trainings of a source
PARC_MODES = {"source_and_arch": ["target"],  # eq. 2: every expert of one target
              "architecture": ["target", "source", "init"],  # one pre-training, its architectures
              "source": ["target", "arch"],  # one architecture, its pre-trainings
              "target": ["expert"]}  # eq. 5: one expert, correlation across the targets
_PCA = re.compile(r"^(?P<base>.+)_pca(?P<dim>\d+)$")
ORACLE = "task_agnostic_oracle"  # Which Model Fig. 7: ranks by mean fine-tuned accuracy over targets
WM_REGRET = ("task_agnostic", "logistic", "knn_loo", "hybrid_logistic", "hybrid_knn_loo")
WM_ZERO = ("task_agnostic", ORACLE, "logistic", "knn_loo", "hybrid_logistic", "hybrid_knn_loo", "random")
WM_LABELS = {"task_agnostic": "task-agnostic", ORACLE: "task-agnostic oracle", "logistic": "linear",
             "knn_loo": "kNN", "hybrid_logistic": "hybrid linear", "hybrid_knn_loo": "hybrid kNN", "random": "random"}


@dataclass(frozen=True)
class Artifact:
    kind: str  # "figure" | "table"
    needs: frozenset
    render: Callable[[dict, Path], pd.DataFrame]
    multidomain: bool = False  # rendered only when the benchmark has a multi-domain expert


# --------------------------------------------------------------------------- helpers

def _single(df: pd.DataFrame) -> pd.DataFrame:
    """The single-domain zoo's rows (domains of the multi-domain expert are selected apart)."""
    return split_zoos(df)[0]


def _domains(df: pd.DataFrame) -> pd.DataFrame:
    return split_zoos(df)[1]


def _with_meta(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with arch, source, init parsed from its expert ids."""
    meta = pd.DataFrame(list(df["expert"].map(parse_expert)), index=df.index, columns=["arch", "source", "init"])
    return pd.concat([df.drop(columns=[c for c in meta if c in df]), meta], axis=1)


def _md_arch(ctx) -> str:
    """Architecture of the multi-domain expert (its domain ids), else the generalist's."""
    _, md = split_zoos(ctx["zoo"])
    return parse_expert(md["expert"].iloc[0])["arch"] if len(md) else parse_expert(ctx["generalist"])["arch"]


def _sources_by_size(df: pd.DataFrame) -> list[str]:
    """Sources by increasing number of training images (Deshpande Table 1's order), then name."""
    size = df.groupby("source")["source_images"].max() if "source_images" in df else pd.Series(dtype=float)
    return sorted(df["source"].unique(), key=lambda s: (size.get(s, np.inf), s))


def _write(df: pd.DataFrame, out_csv) -> pd.DataFrame:
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    return df


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in the result tables", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _grid(n: int, width: float, height: float, ncols: int = 4):
    import matplotlib.pyplot as plt
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    return fig, axes.ravel()


# --------------------------------------------------------------------------- Deshpande et al.

def table1_zoo_accuracy(ctx, out_csv) -> pd.DataFrame:
    """Table 1: source test accuracy of every single-domain expert, one row per (arch, init)
    ("scratch" = the paper's x, "generalist" = its check mark), one column per source by
    increasing source size; the generalist's own source has no "generalist" entry (NaN, "-")."""
    zoo = _single(ctx["zoo"])
    sources = _sources_by_size(zoo)
    wide = zoo.pivot_table(index=["arch", "init"], columns="source", values="source_test_accuracy",
                           aggfunc="first").reindex(columns=sources)
    wide.columns.name = None
    wide = wide.reset_index().sort_values(["arch", "init"], key=lambda c: c.map({"scratch": 0, "generalist": 1})
                                          if c.name == "init" else c)
    return _write(wide.reset_index(drop=True), out_csv)


def table2_multidomain(ctx, out_csv) -> pd.DataFrame:
    """Table 2: per source, the source test accuracy of the single-domain expert of the
    multi-domain expert's architecture (initialised from the generalist where it exists: the
    paper's "Single Domain" column is its ResNet-101 check-mark row) and of each multi-domain
    variant (Shared, Multi-BN, Adapter)."""
    md, zoo, arch = ctx["multidomain"], _single(ctx["zoo"]), _md_arch(ctx)
    variants = [v for v in MD_VARIANTS if v in set(md["variant"])] + sorted(set(md["variant"]) - set(MD_VARIANTS))
    wide = md.pivot_table(index="source", columns="variant", values="source_test_accuracy", aggfunc="first")
    acc = zoo.set_index("expert")["source_test_accuracy"]
    single = [acc.get(f"{arch}-{s}-init", acc.get(f"{arch}-{s}", np.nan)) for s in wide.index]
    out = pd.DataFrame({"source": wide.index, "single_domain": single, **{v: wide[v].to_numpy() for v in variants}})
    order = _sources_by_size(md)
    return _write(out.set_index("source").reindex(order).reset_index(), out_csv)


def table3_compute(ctx, out_csv) -> pd.DataFrame:
    """Table 3 as the paper lays it out: one row per shot setting; brute-force fine-tuning, then
    fine-tuning each method's top-k ("top3_finetune:<method>"), then computing each method's
    scores ("score:<method>"), as multiples of one fine-tune of the generalist
    (`analysis.cost.compute_cost`, whose long table is compute_cost.csv)."""
    from analysis.cost import compute_cost
    cost = compute_cost(_single(ctx["finetune"]), _single(ctx["scores"]), ctx["generalist"], int(ctx["top_k"]))
    method = cost["method"].fillna("")
    cost["column"] = np.where(method == "", cost["item"], cost["item"] + ":" + method)
    columns = list(dict.fromkeys(cost["column"]))  # compute_cost's order: brute force, top-k, score
    wide = (cost.pivot_table(index="shots", columns="column", values="multiple", aggfunc="first")
            .reindex(index=shots_order(cost["shots"]), columns=columns))
    wide.columns.name = None
    return _write(wide.reset_index(), out_csv)


def fig1_error_vs_shots(ctx, out_png) -> pd.DataFrame:
    """Fig. 1(b): test error (best over the learning-rate grid, i.e. with HPO) of the best expert
    of the zoo vs the generalist, per shot setting; as in the paper, the experts trained on the
    generalist's own source are left out of the zoo (experts initialised from it stay in).
    Only (target, shots) with both are kept; "mean" rows average over those targets."""
    from analysis.figures import _save
    gen = ctx["generalist"]
    best = _with_meta(best_finetune(_single(ctx["finetune"])))
    zoo = best[best["source"] != parse_expert(gen)["source"]]
    zoo = zoo.loc[zoo.groupby(["target", "shots"])["test_accuracy"].idxmax()].assign(series="zoo_best")
    both = pd.concat([zoo, best[best["expert"] == gen].assign(series="generalist")], ignore_index=True)
    both = both[both.groupby(["target", "shots"])["series"].transform("nunique") == 2]
    both = both.assign(test_error=100.0 - both["test_accuracy"], n_targets=1)
    mean = (both.groupby(["series", "shots"], as_index=False)
            .agg(test_error=("test_error", "mean"), n_targets=("target", "nunique")).assign(target="mean", expert=""))
    cols = ["target", "shots", "series", "expert", "test_error", "n_targets"]
    data = pd.concat([mean[cols], both.sort_values(["target", "series"])[cols]], ignore_index=True)

    shots = shots_order(data["shots"])[::-1]  # fewest shots on the left, as the paper's axis
    panels = ["mean"] + sorted(set(data["target"]) - {"mean"})
    fig, axes = _grid(len(panels), 3.2, 2.8)
    for ax, target in zip(axes, panels):
        d = data[data["target"] == target]
        for series, style in (("zoo_best", dict(color="C0", marker="o", label="model zoo (best expert)")),
                              ("generalist", dict(color="red", marker="*", label=f"generalist ({gen})"))):
            y = d[d["series"] == series].set_index("shots")["test_error"].reindex(shots)
            ax.plot(range(len(shots)), y.to_numpy(dtype=float), **style)
        ax.set_xticks(range(len(shots)), shots)
        ax.set_title("mean over targets" if target == "mean" else target, fontsize=9)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("top-1 test error (%)")
        ax.grid(alpha=0.3)
    if data.empty:
        _no_data(axes[0], "fine-tunes")
    else:
        axes[0].legend(fontsize=7)
    fig.suptitle("Fine-tuning the model zoo vs the generalist (both best over the lr grid)")
    return _save(fig, data, out_png)


def fig3_multidomain_finetune(ctx, out_png) -> pd.DataFrame:
    """Fig. 3: test error on the full targets of the generalist (single-domain) and of the
    generalist's domain of the multi-domain expert (red), of every other domain (green) and of
    the single-domain experts of the same architecture (blue; filled: initialised from the
    generalist); a black "<" flags domains with lower error than the single-domain generalist."""
    import matplotlib.pyplot as plt
    from analysis.figures import _save
    gen, arch = ctx["generalist"], _md_arch(ctx)
    best = _with_meta(best_finetune(ctx["finetune"]))
    best = best[best["shots"] == "full"]
    is_md = best["init"] == "multidomain"
    group = np.select([best["expert"] == gen, best["expert"] == f"{gen}-md", is_md, best["arch"] == arch],
                      ["generalist", "generalist_md", "domain", "single_domain"], default="")
    data = best.assign(group=group, test_error=100.0 - best["test_accuracy"])[group != ""]
    gen_err = data[data["group"] == "generalist"].set_index("target")["test_error"]
    beats = data["init"].eq("multidomain") & (data["test_error"] < data["target"].map(gen_err))
    data = (data.assign(beats_generalist=beats)[["expert", "source", "init", "target", "group", "test_error",
                                                 "beats_generalist"]].reset_index(drop=True))

    targets = sorted(data["target"].unique())
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(targets) + 2), 4.5))
    x = data["target"].map({t: i for i, t in enumerate(targets)}).to_numpy(dtype=float)
    styles = {"generalist": (-0.25, dict(c="red", marker="*", s=90, label=f"generalist ({gen})")),
              "generalist_md": (-0.25, dict(facecolors="none", edgecolors="red", marker="D", s=40,
                                            label=f"generalist's domain ({gen}-md)")),
              "domain": (0.0, dict(c="green", marker="o", s=30, label="other domains of the multi-domain expert"))}
    for group, (off, style) in styles.items():
        sel = (data["group"] == group).to_numpy()
        if sel.any():
            ax.scatter(x[sel] + off, data["test_error"][sel], zorder=3, **style)
    for init, face in (("generalist", "C0"), ("scratch", "none")):
        sel = ((data["group"] == "single_domain") & (data["init"] == init)).to_numpy()
        if sel.any():
            ax.scatter(x[sel] + 0.25, data["test_error"][sel], marker="s", facecolors=face, edgecolors="C0", s=25,
                       label=f"single-domain {arch}, {'init: generalist' if init == 'generalist' else 'from scratch'}")
    win = data["beats_generalist"].to_numpy()
    if win.any():
        ax.scatter(x[win] + 0.12, data["test_error"][win], c="black", marker="<", s=20, zorder=4,
                   label="domain better than generalist")
    if data.empty:
        _no_data(ax, "full-target fine-tunes")
    ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right")
    ax.set_xlabel("target task (full)")
    ax.set_ylabel("top-1 test error (%)")
    ax.grid(axis="y", alpha=0.3)
    if len(data):
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2, frameon=False)
    ax.set_title("Fine-tuning the domains of the multi-domain expert")
    return _save(fig, data, out_png)


def _heatmap(long: pd.DataFrame, panels: list, columns: list, n_methods: int, title: str, out_png) -> pd.DataFrame:
    """Heatmaps of ``gain`` (rows: target, columns: ``columns``), one per ``panel``, as Fig. 4."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from analysis.figures import _panels, _save
    finite = long["gain"].astype(float).abs()
    vmax = max(float(finite.max()) if finite.notna().any() else 0.0, 1e-6)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    fig, axes = _panels(len(panels), 0.6 * len(columns) + 1.8, 0.45 * max(long["target"].nunique(), 1) + 2,
                        layout="constrained", stacked=len(columns) > 10)
    im = None
    for ax, panel in zip(axes, panels):
        grid = (long[long["panel"] == panel].pivot_table(index="target", columns="column", values="gain",
                                                         aggfunc="mean", dropna=False)
                .reindex(columns=columns).sort_index())
        values = grid.to_numpy(dtype=float)
        im = ax.imshow(np.ma.masked_invalid(values), cmap=plt.get_cmap("RdYlGn").with_extremes(bad="lightgrey"),
                       norm=norm, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
        ax.axvline(n_methods - 0.5, color="black", lw=1)
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set_xlabel("selection method")
        ax.set_ylabel("target task")
        ax.set_title(panel)
    if not panels:
        _no_data(axes[0], "selections")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="accuracy gain (% points)", shrink=0.8)
    fig.suptitle(title)
    return _save(fig, long, out_png)


def fig5_multidomain_selection(ctx, out_png) -> pd.DataFrame:
    """Fig. 5: accuracy gain over fine-tuning the generalist's domain of the multi-domain expert
    of the best of the top-1 and top-k domains selected by each method, per target, with the
    best and worst single domain ("best gain" / "worst gain")."""
    from analysis.protocols import evaluate_selection, gain_bounds, method_order
    ft, sc, ref = _domains(ctx["finetune"]), _domains(ctx["scores"]), f"{ctx['generalist']}-md"
    bounds = gain_bounds(ft, ref) if len(ft) else pd.DataFrame(columns=["target", "shots", "best_gain", "worst_gain"])
    bounds = pd.concat([bounds[["shots", "target", b]].assign(column=b.replace("_", " ")).rename(columns={b: "gain"})
                        for b in ("best_gain", "worst_gain")], ignore_index=True)
    ks = sorted({1, int(ctx["top_k"])})
    long = pd.concat([pd.concat([evaluate_selection(ft, sc, ref, k)[["shots", "target", "method", f"top{k}_gain"]]
                                 .rename(columns={"method": "column", f"top{k}_gain": "gain"}), bounds])
                      .assign(selection=f"top-{k}") for k in ks], ignore_index=True)
    methods = method_order(set(long["column"]) - {"best gain", "worst gain"})
    long["panel"] = long["selection"] + ", shots: " + long["shots"].astype(str)
    panels = [f"top-{k}, shots: {s}" for s in shots_order(long["shots"]) for k in ks]
    rank = {p: i for i, p in enumerate(panels)}
    long = long[["selection", "shots", "target", "column", "gain", "panel"]].sort_values(
        ["panel", "target", "column"], key=lambda c: c.map(rank) if c.name == "panel" else c)
    return _heatmap(long.reset_index(drop=True), panels, methods + ["best gain", "worst gain"], len(methods),
                    "Selecting the domain of the multi-domain expert: gain over the generalist's domain", out_png)


def _bars(ax, data: pd.DataFrame, x: str, hue: str, value: str, x_order: list, hue_order: list, labels=None) -> None:
    """Grouped bars of ``value``: groups along ``x``, one colour per ``hue``."""
    width = 0.8 / max(len(hue_order), 1)
    for i, h in enumerate(hue_order):
        y = data[data[hue] == h].set_index(x)[value].reindex(x_order)
        ax.bar(np.arange(len(x_order)) + (i - (len(hue_order) - 1) / 2) * width, y.to_numpy(dtype=float), width,
               color=f"C{i}", label=(labels or {}).get(h, h))
    ax.set_xticks(range(len(x_order)), x_order, rotation=30 if len(x_order) > 5 else 0,
                  ha="right" if len(x_order) > 5 else "center")
    ax.axhline(0, color="black", lw=0.8)
    ax.grid(axis="y", alpha=0.3)


def fig7_probe_size(ctx, out_png) -> pd.DataFrame:
    """Fig. 7: mean over targets of the top-k gain over the generalist with scores computed on 25
    images per class (the default probe set), 50 per class or all training images, per method
    (`analysis.protocols.probe_size_ablation`); only shot settings with a larger probe set."""
    from analysis.figures import _panels, _save
    from analysis.protocols import ABLATION_PROBES, method_order, probe_size_ablation
    k = int(ctx["top_k"])
    ab = probe_size_ablation(_single(ctx["finetune"]), _single(ctx["scores"]), ctx["generalist"], k)
    data = ab[ab.groupby("shots")["probe"].transform("nunique") > 1].reset_index(drop=True)
    shots, methods = shots_order(data["shots"]), method_order(data["method"])
    probes = [p for p in ABLATION_PROBES if p in set(data["probe"])]
    fig, axes = _panels(len(shots), max(5.0, 0.22 * len(methods) * max(len(probes), 1) + 2), 4)
    for ax, shot in zip(axes, shots):
        _bars(ax, data[data["shots"] == shot], "method", "probe", f"top{k}_gain", methods, probes, PROBE_LABELS)
        ax.set_xlabel("selection method")
        ax.set_ylabel(f"top-{k} gain over generalist (% points)")
        ax.set_title(f"shots: {shot}")
        ax.legend(fontsize=8, title="probe set")
    if not shots:
        _no_data(axes[0], "probe-size ablation rows")
    fig.suptitle("Probe-set size for model selection")
    return _save(fig, data, out_png)


# --------------------------------------------------------------------------- PARC (Bolya et al.)

def parc_probes(scores: pd.DataFrame) -> list[str]:
    """PARC's probe draws ("parc_draw*"); the default probe set when the scores have none."""
    from analysis.protocols import PARC_DRAW, probes_present
    return sorted(p for p in probes_present(scores) if PARC_DRAW.match(p)) or ["default"]


def _on_probes(scores: pd.DataFrame, probes) -> pd.DataFrame:
    probe = scores["probe"].fillna("default").astype(str) if "probe" in scores else "default"
    df = scores.assign(probe=probe)
    return df[df["probe"].isin(list(probes))]


def mean_pearson(finetune: pd.DataFrame, scores: pd.DataFrame, mode: str = "source_and_arch",
                 probes=None) -> pd.DataFrame:
    """PARC's mean Pearson correlation (x100) in one evaluation mode of its Table 2, per method and
    shots: per probe draw, the mean over the groups of ``PARC_MODES[mode]`` (e.g. per target) of
    pearsonr(scores, best fine-tuned accuracy) over the experts in the group; then mean and std
    (ddof=0) over the draws (``probes``, default `parc_probes`). Groups with an undefined
    correlation (fewer than 2 experts, constant input) are left out; ``random`` counts as its
    expectation, 0. With mode "source_and_arch" this is `analysis.protocols.parc_protocol`.
    Columns: method, shots, pearson_mean, pearson_std, n_draws."""
    from analysis.protocols import RANDOM, correlations, method_order, order_rows
    cols = ["method", "shots", "pearson_mean", "pearson_std", "n_draws"]
    df = _on_probes(scores, parc_probes(scores) if probes is None else probes).dropna(subset=["score"])
    df = _with_meta(df.merge(best_finetune(finetune)[KEYS + ["test_accuracy"]], on=KEYS))
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = [(m, s, p, 100 * correlations(g["score"], g["test_accuracy"], m == RANDOM, ("pearson",))["pearson"])
            for (m, s, p, *_), g in df.groupby(["method", "shots", "probe", *PARC_MODES[mode]])]
    per_draw = (pd.DataFrame(rows, columns=["method", "shots", "probe", "pc"])
                .groupby(["method", "shots", "probe"], as_index=False)["pc"].mean().dropna(subset=["pc"]))
    out = per_draw.groupby(["method", "shots"], as_index=False)["pc"].agg(
        pearson_mean="mean", pearson_std=lambda x: x.std(ddof=0), n_draws="count")
    return order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"]))[cols]


def parc_table1(ctx, out_csv) -> pd.DataFrame:
    """PARC Table 1: mean Pearson correlation (x100, mean and std over the probe draws) per method
    and the time per transfer: ``time_ms`` (std ``time_ms_std``) of the score alone, which is what
    PARC reports ("not including feature extraction"), and ``time_with_features_ms`` adding the
    shared forward pass; means over every (expert, target, draw)."""
    ft, sc = _single(ctx["finetune"]), _single(ctx["scores"])
    probes = parc_probes(sc)
    rows = _on_probes(sc, probes)
    rows = rows.assign(time_ms=1000 * rows["seconds"], total_ms=1000 * (rows["seconds"] + rows["feature_seconds"]))
    time = rows.groupby(["method", "shots"], as_index=False).agg(
        time_ms=("time_ms", "mean"), time_ms_std=("time_ms", lambda x: x.std(ddof=0)),
        time_with_features_ms=("total_ms", "mean"))
    return _write(mean_pearson(ft, sc, probes=probes).merge(time, on=["method", "shots"], how="left"), out_csv)


def parc_table2_modes(ctx, out_csv) -> pd.DataFrame:
    """PARC Table 2: mean Pearson (x100, mean/std over draws) in each evaluation mode: over all
    experts of a target (source_and_arch, eq. 2), over architectures with the pre-training fixed
    (architecture), over pre-trainings with the architecture fixed (source), and over targets with
    the expert fixed (target, eq. 5). Columns <mode>_mean, <mode>_std per mode."""
    ft, sc = _single(ctx["finetune"]), _single(ctx["scores"])
    out = None
    for mode in PARC_MODES:
        m = (mean_pearson(ft, sc, mode).drop(columns="n_draws")
             .rename(columns={"pearson_mean": f"{mode}_mean", "pearson_std": f"{mode}_std"}))
        out = m if out is None else out.merge(m, on=["method", "shots"], how="outer")
    from analysis.protocols import method_order, order_rows
    out = order_rows(out, method=method_order(out["method"]), shots=shots_order(out["shots"])) if len(out) else out
    return _write(out, out_csv)


def parc_table3_depth(ctx, out_csv) -> pd.DataFrame:
    """PARC Table 3: mean Pearson (x100, mean/std over draws) of every method as is and with the
    "+l" depth term (`analysis.strategies.depth_calibrated`, PARC eq. 6)."""
    from analysis.strategies import CALIBRATED, depth_calibrated
    ft, sc, zoo = _single(ctx["finetune"]), _single(ctx["scores"]), _single(ctx["zoo"])
    probes = parc_probes(sc)
    plain = mean_pearson(ft, sc, probes=probes)
    calibrated = mean_pearson(ft, depth_calibrated(sc, zoo, probe=None), probes=probes)
    calibrated["method"] = calibrated["method"].str.removesuffix(CALIBRATED)
    out = plain.merge(calibrated, on=["method", "shots"], suffixes=("", "_l"))
    out = out.rename(columns={"pearson_mean": "original_mean", "pearson_std": "original_std",
                              "pearson_mean_l": "depth_mean", "pearson_std_l": "depth_std"})
    cols = ["method", "shots", "original_mean", "original_std", "depth_mean", "depth_std", "n_draws"]
    return _write(out[cols], out_csv)


def pca_variants(methods) -> dict[str, tuple[str, str]]:
    """method -> (base method, PCA dimension or "full") for every base method that has
    ``<base>_pca<d>`` variants among ``methods`` (the base itself is "full")."""
    found = {m: (x["base"], x["dim"]) for m in methods if (x := _PCA.match(m))}
    bases = {b for b, _ in found.values()}
    return {**found, **{b: (b, "full") for b in bases if b in set(methods)}}


def parc_fig2_pca(ctx, out_png) -> pd.DataFrame:
    """PARC Fig. 2a: mean Pearson (x100, mean and std over draws) against the PCA dimension the
    features were reduced to, for every method with ``_pca<d>`` variants ("full": unreduced)."""
    from analysis.figures import _panels, _save
    ft, sc = _single(ctx["finetune"]), _single(ctx["scores"])
    variants = pca_variants(sc["method"].unique())
    pc = mean_pearson(ft, sc[sc["method"].isin(list(variants))])
    pc.insert(0, "pca_dim", pc["method"].map(lambda m: variants[m][1]))
    pc.insert(0, "base", pc["method"].map(lambda m: variants[m][0]))
    dims = sorted({d for d in pc["pca_dim"] if d != "full"}, key=int) + ["full"] * bool((pc["pca_dim"] == "full").any())
    data = pc.sort_values(["base", "shots", "pca_dim"], key=lambda c: c.map({d: i for i, d in enumerate(dims)})
                          if c.name == "pca_dim" else c).reset_index(drop=True)
    shots = shots_order(data["shots"])
    fig, axes = _panels(len(shots), max(4.0, 0.6 * len(dims) + 2.5), 3.8)
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
        _no_data(axes[0], "_pca<d> score variants")
    fig.suptitle("Feature reduction with PCA before scoring")
    return _save(fig, data, out_png)


# --------------------------------------------------------------------------- Which Model to Transfer?

def p_zero_regret(scores, values, budget: int) -> float:
    """Probability that the top-``budget`` experts by ``scores`` hold a best expert (zero regret),
    ties at the cut-off drawn uniformly: 1 - C(g - b, r) / C(g, r) for r drawn from a tie group of
    g holding b best experts, 1 when a surely selected expert is best."""
    from analysis.protocols import topk_split
    v = np.asarray(values, dtype=float)
    sure, boundary, r = topk_split(scores, budget)
    best = v == v.max()
    if (sure & best).any():
        return 1.0
    g, b = int(boundary.sum()), int((boundary & best).sum())
    return 1.0 - comb(g - b, r) / comb(g, r)


def _pools(ctx) -> dict:
    return ctx.get("pools") or {"all": None}


def pool_rankings(ctx, pool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fine-tunes, ranking frames) of one model pool: task-agnostic, the task-agnostic oracle,
    the task-aware scores (logistic, knn_loo), the hybrids and random, on single-domain experts."""
    from analysis.strategies import TASK_AWARE, hybrid, random_strategy, restrict_pool, task_agnostic, task_aware
    zoo = _single(ctx["zoo"])
    ft, sc = (restrict_pool(_single(ctx[n]), zoo, pool) for n in ("finetune", "scores"))
    aware = [m for m in TASK_AWARE if (sc["method"] == m).any()]
    candidates = random_strategy(sc, zoo, pool)
    mean_acc = best_finetune(ft).groupby(["expert", "shots"])["test_accuracy"].mean()
    oracle = candidates.assign(method=ORACLE, score=[mean_acc.get(key, np.nan) for key in
                                                     zip(candidates["expert"], candidates["shots"])])
    frames = [task_agnostic(sc, zoo, pool), oracle, *(task_aware(sc, m, zoo, pool) for m in aware),
              *(hybrid(sc, zoo, m, pool) for m in aware), candidates]
    frames = [f for f in frames if len(f)]
    return ft, (pd.concat(frames, ignore_index=True) if frames else candidates)


def _strategy_order(present, order) -> list[str]:
    return [s for s in order if s in set(present)]


def wm_regret_b12(ctx, out_png) -> pd.DataFrame:
    """Which Model Figs. 3-4 (6): relative regret r(m) per target with budget B = 1 (transparent
    bars) and B = 2 (solid) of the task-agnostic, linear (logistic), kNN (knn_loo) and hybrid
    strategies, one row of panels per strategy, one column per model pool and shot setting."""
    import matplotlib.pyplot as plt
    from analysis.figures import _save
    from analysis.protocols import regret_table
    frames = []
    for name, pool in _pools(ctx).items():
        ft, ranked = pool_rankings(ctx, pool)
        reg = regret_table(ft, ranked[ranked["method"].isin(WM_REGRET)])
        frames.append(reg[reg["budget"] <= 2].assign(pool=name))
    data = pd.concat(frames, ignore_index=True).rename(columns={"method": "strategy"})
    data = data[["pool", "strategy", "target", "shots", "budget", "rel_regret", "abs_regret"]]
    strategies, shots = _strategy_order(data["strategy"], WM_REGRET), shots_order(data["shots"])
    pools = list(_pools(ctx))
    data = data.sort_values(["pool", "strategy", "shots", "target", "budget"], key=lambda c: c.map(
        {v: i for i, v in enumerate({"pool": pools, "strategy": strategies, "shots": shots}[c.name])})
        if c.name in ("pool", "strategy", "shots") else c).reset_index(drop=True)
    targets = sorted(data["target"].unique())
    columns = [(p, s) for p in pools for s in shots]
    n_rows, n_cols = max(len(strategies), 1), max(len(columns), 1)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, sharey=True,
                             figsize=(max(3.0, 0.45 * len(targets) + 1.5) * n_cols, 2.4 * n_rows))
    for i, strategy in enumerate(strategies):
        for j, (pool, shot) in enumerate(columns):
            ax, d = axes[i, j], data[(data["strategy"] == strategy) & (data["pool"] == pool) & (data["shots"] == shot)]
            for budget, alpha in ((1, 0.35), (2, 1.0)):  # B = 2 never exceeds B = 1: drawn in front
                y = d[d["budget"] == budget].set_index("target")["rel_regret"].reindex(targets)
                ax.bar(range(len(targets)), y.to_numpy(dtype=float), color=f"C{i}", alpha=alpha, label=f"B = {budget}")
            ax.set_xticks(range(len(targets)), targets, rotation=90, fontsize=7)
            ax.set_title(f"{WM_LABELS.get(strategy, strategy)} | pool: {pool} | shots: {shot}", fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[i, 0].set_ylabel("relative regret")
        axes[i, 0].legend(fontsize=7)
    if not strategies:
        _no_data(axes[0, 0], "task-agnostic / task-aware strategies")
    fig.suptitle("Relative regret of model-search strategies with budgets B = 1 and B = 2")
    return _save(fig, data, out_png)


def zero_regret_curve(finetune: pd.DataFrame, ranked: pd.DataFrame) -> pd.DataFrame:
    """Which Model Fig. 7: per method and shots, for every budget B up to the largest pool, the
    fraction of targets on which the top-B experts hold a best one (exact expectation over tie
    draws and over random selection). Columns: strategy, shots, budget, zero_regret_fraction, n_targets."""
    from analysis.protocols import candidate_groups
    cols = ["strategy", "shots", "budget", "zero_regret_fraction", "n_targets"]
    groups = list(candidate_groups(finetune, ranked))
    if not groups:
        return pd.DataFrame(columns=cols)
    n_max = max(len(draws[0][1]) for *_, draws in groups)
    rows = [(m, s, b, float(np.mean([p_zero_regret(sc, acc, b) for sc, acc in draws])))
            for m, t, s, draws in groups for b in range(1, n_max + 1)]
    return (pd.DataFrame(rows, columns=["strategy", "shots", "budget", "p"])
            .groupby(["strategy", "shots", "budget"], as_index=False)["p"]
            .agg(zero_regret_fraction="mean", n_targets="count"))[cols]


def wm_zero_regret(ctx, out_png) -> pd.DataFrame:
    """Which Model Fig. 7: fraction of targets with zero regret against the budget B per strategy
    (task-agnostic, its oracle ranking by mean fine-tuned accuracy over all targets, linear, kNN,
    hybrids, random), one panel per model pool and shot setting."""
    from matplotlib.ticker import MaxNLocator
    from analysis.figures import _save
    data = pd.concat([zero_regret_curve(*pool_rankings(ctx, pool)).assign(pool=name)
                      for name, pool in _pools(ctx).items()], ignore_index=True)
    data = data[data["strategy"].isin(WM_ZERO)][["pool", "strategy", "shots", "budget", "zero_regret_fraction",
                                                 "n_targets"]]
    strategies, shots = _strategy_order(data["strategy"], WM_ZERO), shots_order(data["shots"])
    panels = [(p, s) for p in _pools(ctx) for s in shots]
    fig, axes = _grid(len(panels), 4.0, 3.2, ncols=max(len(shots), 1))
    for ax, (pool, shot) in zip(axes, panels):
        d = data[(data["pool"] == pool) & (data["shots"] == shot)]
        for i, strategy in enumerate(strategies):
            c = d[d["strategy"] == strategy]
            ax.plot(c["budget"], c["zero_regret_fraction"], marker=".", label=WM_LABELS.get(strategy, strategy),
                    color="grey" if strategy == "random" else f"C{i}",
                    ls="--" if strategy in (ORACLE, "random") else "-")
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("budget B (experts fine-tuned)")
        ax.set_ylabel("fraction of targets with zero regret")
        ax.set_title(f"pool: {pool} | shots: {shot}", fontsize=9)
        ax.grid(alpha=0.3)
    if panels:
        axes[0].legend(fontsize=7)
    else:
        _no_data(axes[0], "strategies")
    fig.suptitle("Optimal picks as a function of the budget")
    return _save(fig, data.reset_index(drop=True), out_png)


# --------------------------------------------------------------------------- registry

def _a(kind, needs, render, multidomain=False) -> Artifact:
    return Artifact(kind, frozenset(needs), render, multidomain)


ARTIFACTS: dict[str, Artifact] = {
    "table1_zoo_accuracy": _a("table", {"zoo"}, table1_zoo_accuracy),
    "table2_multidomain": _a("table", {"zoo", "multidomain"}, table2_multidomain, multidomain=True),
    "table3_compute": _a("table", {"finetune", "scores"}, table3_compute),
    "fig1_error_vs_shots": _a("figure", {"finetune"}, fig1_error_vs_shots),
    "fig3_multidomain_finetune": _a("figure", {"zoo", "finetune"}, fig3_multidomain_finetune, multidomain=True),
    "fig5_multidomain_selection": _a("figure", {"finetune", "scores"}, fig5_multidomain_selection, multidomain=True),
    "fig7_probe_size": _a("figure", {"finetune", "scores"}, fig7_probe_size),
    "parc_table1": _a("table", {"finetune", "scores"}, parc_table1),
    "parc_table2_modes": _a("table", {"finetune", "scores"}, parc_table2_modes),
    "parc_table3_depth": _a("table", {"zoo", "finetune", "scores"}, parc_table3_depth),
    "parc_fig2_pca": _a("figure", {"finetune", "scores"}, parc_fig2_pca),
    "wm_regret_b12": _a("figure", {"zoo", "finetune", "scores"}, wm_regret_b12),
    "wm_zero_regret": _a("figure", {"zoo", "finetune", "scores"}, wm_zero_regret),
}


def artifact_names(multidomain: bool) -> list[str]:
    """Names of the artifacts of a benchmark (with or without a multi-domain expert)."""
    return [name for name, a in ARTIFACTS.items() if multidomain or not a.multidomain]


def artifact_path(results_dir, name: str) -> Path:
    """<results>/figures/<name>.png (its data beside it as .csv) or <results>/tables/<name>.csv."""
    folder, suffix = ("figures", "png") if ARTIFACTS[name].kind == "figure" else ("tables", "csv")
    return Path(results_dir) / folder / f"{name}.{suffix}"


def render_all(ctx: dict, results_dir, multidomain: bool) -> list[Path]:
    """Render every artifact of the benchmark; returns the paths written (figures: the .png)."""
    out = []
    for name in artifact_names(multidomain):
        missing = [n for n in sorted(ARTIFACTS[name].needs) if ctx.get(n) is None]
        if missing:
            raise AnalysisError(f"artifact {name} needs the result table(s) {missing} "
                                f"({', '.join(f'tables/{n}' for n in missing)}); run step=tables first")
        path = artifact_path(results_dir, name)
        ARTIFACTS[name].render(ctx, path)
        out.append(path)
    return out
