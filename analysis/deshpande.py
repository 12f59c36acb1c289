"""Deshpande et al., "A linearized framework and a new benchmark for model selection for
fine-tuning" (2021): Tables 1-3 and Figs. 1-8, rendered from the result tables.

Every function here is a renderer of `analysis.outputs`: a table takes the `analysis.context.Context`
and returns the table; a figure also takes the .png path and writes the figure with its data
beside it (returning the data). Gains are percentage points over the reference expert (the
paper's ImageNet expert); errors are 100 - accuracy (%).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.cost import compute_cost as long_compute_cost
from analysis.plotting import MARKERS, bars, heatmaps, no_data, readable_grid, save_figure
from analysis.intervals import seed_bootstrap, selection_bootstrap, summarize_selection, summary_bars
from analysis.protocols import (CORRELATIONS, ablation_probes, evaluate_selection, gain_bounds, method_order,
                                probe_size_ablation)
from analysis.tables import best_finetune, parse_expert, shots_order, split_zoos, with_meta
from pipeline.layout import probe_label

MD_VARIANTS = ("shared", "multi_bn", "adapter")  # Table 2's column order
BOUNDS = ["best gain", "worst gain"]


def _md_arch(ctx) -> str:
    """Architecture of the multi-domain expert (its domain ids), else the reference expert's."""
    md = ctx.domains("zoo_accuracy")
    return parse_expert(md["expert"].iloc[0] if len(md) else ctx.reference_expert)["arch"]


def _sources_by_size(df: pd.DataFrame) -> list[str]:
    """Sources by increasing number of training images (Table 1's order), then name."""
    size = df.groupby("source")["source_images"].max() if "source_images" in df else pd.Series(dtype=float)
    return sorted(df["source"].unique(), key=lambda s: (size.get(s, np.inf), s))


# --------------------------------------------------------------------------- tables

def table1_zoo_accuracy(ctx) -> pd.DataFrame:
    """Table 1: source test accuracy (%) of every single-domain expert, one row per (arch, init)
    ("scratch" = the paper's x, "generalist" = its check mark), one column per source by
    increasing source size; the generalist's own source has no "generalist" entry (NaN, "-")."""
    zoo = ctx.single("zoo_accuracy")
    wide = zoo.pivot_table(index=["arch", "init"], columns="source", values="source_test_accuracy",
                           aggfunc="first").reindex(columns=_sources_by_size(zoo))
    wide.columns.name = None
    wide = wide.reset_index().sort_values(["arch", "init"], key=lambda c: c.map({"scratch": 0, "generalist": 1})
                                          if c.name == "init" else c)
    return wide.reset_index(drop=True)


def table2_multidomain(ctx) -> pd.DataFrame:
    """Table 2: per source, the source test accuracy (%) of the single-domain expert of the
    multi-domain expert's architecture (initialised from the generalist where it exists: the
    paper's "Single Domain" column is its ResNet-101 check-mark row) and of each multi-domain
    variant (Shared, Multi-BN, Adapter)."""
    md, arch = ctx.table("multidomain_accuracy"), _md_arch(ctx)
    variants = [v for v in MD_VARIANTS if v in set(md["variant"])] + sorted(set(md["variant"]) - set(MD_VARIANTS))
    wide = md.pivot_table(index="source", columns="variant", values="source_test_accuracy", aggfunc="first")
    acc = ctx.single("zoo_accuracy").set_index("expert")["source_test_accuracy"]
    single = [acc.get(f"{arch}-{s}-init", acc.get(f"{arch}-{s}", np.nan)) for s in wide.index]
    out = pd.DataFrame({"source": wide.index, "single_domain": single, **{v: wide[v].to_numpy() for v in variants}})
    return out.set_index("source").reindex(_sources_by_size(md)).reset_index()


def compute_cost(ctx) -> pd.DataFrame:
    """compute_cost.csv: Table 3 in long form (`analysis.cost.compute_cost`), single-domain zoo."""
    return long_compute_cost(ctx.single("finetune"), ctx.single("scores"), ctx.reference_expert, ctx.top_k,
                             ctx.probe_set)


def table3_compute(ctx) -> pd.DataFrame:
    """Table 3 as the paper lays it out: one row per shot setting; brute-force fine-tuning, then
    fine-tuning each method's top-k ("top3_finetune:<method>"), then computing each method's
    scores ("score:<method>"), as multiples of one fine-tune of the reference expert (lower =
    cheaper; compute_cost.csv is the long form)."""
    cost = compute_cost(ctx)
    method = cost["method"].fillna("")
    cost["column"] = np.where(method == "", cost["item"], cost["item"] + ":" + method)
    columns = list(dict.fromkeys(cost["column"]))  # compute_cost's order: brute force, top-k, score
    wide = (cost.pivot_table(index="shots", columns="column", values="multiple", aggfunc="first")
            .reindex(index=shots_order(cost["shots"]), columns=columns))
    wide.columns.name = None
    return wide.reset_index()


def selection_eval(ctx) -> pd.DataFrame:
    """Sec. 4.3 per method, target and shots: the correlations, top-k gain and trials to best
    (`evaluate_selection`), each with its 95% interval over the fine-tuning seeds (``<metric>_ci_low`` /
    ``<metric>_ci_high``; NaN with one seed)."""
    return selection_bootstrap(ctx).with_intervals()


def selection_eval_multidomain(ctx) -> pd.DataFrame:
    """Fig. 5's protocol: selection among the multi-domain expert's domains, gains over the
    reference expert's domain ({reference_expert}-md), with intervals over the seeds as selection_eval."""
    scores, k = ctx.domains("scores"), ctx.top_k
    return seed_bootstrap(ctx, "selection_bootstrap_multidomain",
                          lambda truth: evaluate_selection(truth, scores, f"{ctx.reference_expert}-md", k, ctx.probe_set),
                          ["method", "target", "shots"], [*CORRELATIONS, f"top{k}_gain", "trials_to_best"],
                          domains=True).with_intervals()


def probe_size_table(ctx) -> pd.DataFrame:
    """probe_size_ablation.csv: Fig. 7's top-k gain per probe-set size (`probe_size_ablation`)."""
    return probe_size_ablation(ctx.single("finetune"), ctx.single("scores"), ctx.reference_expert, ctx.top_k,
                               ctx.probe_set)


def figure_rankings(ctx) -> pd.DataFrame:
    """What Figs. 4 and 6 show: the scores and the learned recommenders (recommendations.csv, when there) of
    the single-domain zoo, without the strategies."""
    scores, learned = ctx.single("scores"), ctx.table("recommendations", optional=True)
    return scores if learned is None else pd.concat([scores, split_zoos(learned)[0]], ignore_index=True)


def figure_selection(ctx) -> pd.DataFrame:
    """Fig. 4's evaluation of `figure_rankings`; computed once per context."""
    return ctx.memo("figure_selection", lambda: evaluate_selection(ctx.single("finetune"), figure_rankings(ctx),
                                                                   ctx.reference_expert, ctx.top_k, ctx.probe_set))


# --------------------------------------------------------------------------- fine-tuning figures

def fig1_error_vs_shots(ctx, out_png) -> pd.DataFrame:
    """Fig. 1(b): test error (best over the learning-rate grid, i.e. with HPO; lower = better) of
    the best expert of the zoo vs the reference expert, per shot setting; as in the paper, the
    experts trained on the reference expert's source are left out of the zoo (experts initialised
    from it stay in). Only (target, shots) with both are kept; "mean" rows average over those."""
    ref = ctx.reference_expert
    best = with_meta(best_finetune(ctx.single("finetune")))
    zoo = best[best["source"] != parse_expert(ref)["source"]]
    zoo = zoo.loc[zoo.groupby(["target", "shots"])["test_accuracy"].idxmax()].assign(series="zoo_best")
    # the series keeps the name "generalist": other tools read the CSV
    both = pd.concat([zoo, best[best["expert"] == ref].assign(series="generalist")], ignore_index=True)
    both = both[both.groupby(["target", "shots"])["series"].transform("nunique") == 2]
    both = both.assign(test_error=100.0 - both["test_accuracy"], n_targets=1)
    mean = (both.groupby(["series", "shots"], as_index=False)
            .agg(test_error=("test_error", "mean"), n_targets=("target", "nunique")).assign(target="mean", expert=""))
    cols = ["target", "shots", "series", "expert", "test_error", "n_targets"]
    data = pd.concat([mean[cols], both.sort_values(["target", "series"])[cols]], ignore_index=True)

    shots = shots_order(data["shots"])[::-1]  # fewest shots on the left, as the paper's axis
    names = ["mean"] + sorted(set(data["target"]) - {"mean"})
    fig, axes = readable_grid(len(names), 3.2, 2.8)
    for ax, target in zip(axes, names):
        d = data[data["target"] == target]
        for series, style in (("zoo_best", dict(color="C0", marker="o", label="model zoo (best expert)")),
                              ("generalist", dict(color="red", marker="*", label=f"reference expert ({ref})"))):
            y = d[d["series"] == series].set_index("shots")["test_error"].reindex(shots)
            ax.plot(range(len(shots)), y.to_numpy(dtype=float), **style)
        ax.set_xticks(range(len(shots)), shots)
        ax.set_title("mean over targets" if target == "mean" else target, fontsize=9)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("top-1 test error (%)")
        ax.grid(alpha=0.3)
    if data.empty:
        no_data(axes[0], "fine-tunes")
    else:
        axes[0].legend(fontsize=7)
    fig.suptitle("Fine-tuning the model zoo vs the generalist (both best over the lr grid)")
    return save_figure(fig, data, out_png)


def fig2_finetune_error(ctx, out_png) -> pd.DataFrame:
    """Fig. 2: top-1 test error (100 - best accuracy over lrs; lower = better) of every expert per
    target, one panel per shot setting. As in the paper, each target has columns of markers: the
    reference expert in red, then one column per architecture (filled: init from the generalist,
    hollow: from scratch); a black "<" flags experts beating the reference expert."""
    ref = ctx.reference_expert
    best = best_finetune(ctx.single("finetune"))
    meta = pd.DataFrame([parse_expert(e) for e in best["expert"]], index=best.index)
    data = pd.concat([best, meta], axis=1)
    data["test_error"] = 100.0 - data["test_accuracy"]
    # the columns keep the word "generalist": other tools read the CSV
    data["is_generalist"] = data["expert"] == ref
    gen_err = data[data["is_generalist"]].set_index(["target", "shots"])["test_error"]
    data["beats_generalist"] = data["test_error"] < [gen_err.get(k, np.nan) for k in zip(data["target"], data["shots"])]
    data = data[["expert", "arch", "source", "init", "target", "shots", "test_error",
                 "is_generalist", "beats_generalist"]]

    shots = shots_order(data["shots"])
    archs = sorted(data["arch"].unique())
    n_cols = len(archs) + 1  # reference column + one per arch
    offsets = np.linspace(-0.3, 0.3, n_cols) if n_cols > 1 else np.zeros(1)
    fig, axes = readable_grid(len(shots), max(4.0, 0.9 * data["target"].nunique() + 2), 4.5)
    handles = {}
    for ax, shot in zip(axes, shots):
        d = data[data["shots"] == shot]
        targets = sorted(d["target"].unique())
        x = d["target"].map({t: i for i, t in enumerate(targets)}).to_numpy(dtype=float)
        is_ref = d["is_generalist"].to_numpy()
        handles["reference"] = ax.scatter(x[is_ref] + offsets[0], d["test_error"][is_ref], c="red", marker="*", s=90,
                                    zorder=3, label=f"reference expert ({ref})")
        for i, arch in enumerate(archs):
            for init, face in (("generalist", None), ("scratch", "none")):
                sel = ~is_ref & (d["arch"] == arch).to_numpy() & (d["init"] == init).to_numpy()
                if not sel.any():
                    continue
                color = f"C{i}"
                handles[(arch, init)] = ax.scatter(
                    x[sel] + offsets[i + 1], d["test_error"][sel], marker=MARKERS[i % len(MARKERS)],
                    facecolors=face or color, edgecolors=color, s=30, zorder=2,
                    label=f"{arch}, {'init: generalist' if init == 'generalist' else 'from scratch'}")
                win = sel & d["beats_generalist"].to_numpy()
                if win.any():
                    handles["win"] = ax.scatter(x[win] + offsets[i + 1] + 0.12, d["test_error"][win], c="black",
                                                marker="<", s=20, zorder=4, label="better than generalist")
        ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(targets) - 0.4)
        ax.set_xlabel("target task")
        ax.set_ylabel("top-1 test error (%)")
        ax.set_title(f"shots: {shot}")
        ax.grid(axis="y", alpha=0.3)
    if handles:
        fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=min(len(handles), 4), fontsize=8,
                   frameon=False)
    fig.suptitle("Fine-tuning the model zoo: test error per expert")
    return save_figure(fig, data, out_png)


def fig3_multidomain_finetune(ctx, out_png) -> pd.DataFrame:
    """Fig. 3: test error on the full targets of the reference expert (single-domain) and of its
    domain of the multi-domain expert (red), of every other domain (green) and of the
    single-domain experts of the same architecture (blue; filled: initialised from the
    generalist); a black "<" flags domains with lower error than the reference expert."""
    ref, arch = ctx.reference_expert, _md_arch(ctx)
    best = with_meta(best_finetune(ctx.table("finetune")))
    best = best[best["shots"] == "full"]
    is_md = best["init"] == "multidomain"
    group = np.select([best["expert"] == ref, best["expert"] == f"{ref}-md", is_md, best["arch"] == arch],
                      ["generalist", "generalist_md", "domain", "single_domain"], default="")
    data = best.assign(group=group, test_error=100.0 - best["test_accuracy"])[group != ""]
    ref_err = data[data["group"] == "generalist"].set_index("target")["test_error"]
    beats = data["init"].eq("multidomain") & (data["test_error"] < data["target"].map(ref_err))
    data = (data.assign(beats_generalist=beats)[["expert", "source", "init", "target", "group", "test_error",
                                                 "beats_generalist"]].reset_index(drop=True))

    targets = sorted(data["target"].unique())
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(targets) + 2), 4.5))
    x = data["target"].map({t: i for i, t in enumerate(targets)}).to_numpy(dtype=float)
    styles = {"generalist": (-0.25, dict(c="red", marker="*", s=90, label=f"reference expert ({ref})")),
              "generalist_md": (-0.25, dict(facecolors="none", edgecolors="red", marker="D", s=40,
                                            label=f"reference expert's domain ({ref}-md)")),
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
        no_data(ax, "full-target fine-tunes")
    ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right")
    ax.set_xlabel("target task (full)")
    ax.set_ylabel("top-1 test error (%)")
    ax.grid(axis="y", alpha=0.3)
    if len(data):
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2, frameon=False)
    ax.set_title("Fine-tuning the domains of the multi-domain expert")
    return save_figure(fig, data, out_png)


# --------------------------------------------------------------------------- selection figures

def fig4_top3_gain(ctx, out_png) -> pd.DataFrame:
    """Fig. 4: heatmap of the accuracy gain over the reference expert (points, higher = better) of
    the best of the top-k experts selected by each method (columns) per target (rows), next to
    the "best gain" and "worst gain" of the zoo; one panel per shot setting."""
    k, selection = ctx.top_k, figure_selection(ctx)
    gains, col = gain_bounds(ctx.single("finetune"), ctx.reference_expert), f"top{k}_gain"
    methods = method_order(selection["method"])
    long = pd.concat([
        selection[["shots", "target", "method", col]].rename(columns={"method": "column", col: "gain"}),
        gains[["shots", "target", "best_gain"]].assign(column="best gain").rename(columns={"best_gain": "gain"}),
        gains[["shots", "target", "worst_gain"]].assign(column="worst gain").rename(columns={"worst_gain": "gain"}),
    ], ignore_index=True)
    columns, shots = methods + BOUNDS, shots_order(long["shots"])
    rank = {"shots": {s: i for i, s in enumerate(shots)}, "column": {c: i for i, c in enumerate(columns)}}
    long = long.sort_values(["shots", "target", "column"],
                            key=lambda c: c.map(rank[c.name]) if c.name in rank else c).reset_index(drop=True)
    return heatmaps(long, "shots: " + long["shots"].astype(str), [f"shots: {s}" for s in shots], columns,
                    len(methods), f"Accuracy gain of the best of the top-{k} selected experts",
                    "accuracy gain over generalist (% points)", out_png)


def fig5_multidomain_selection(ctx, out_png) -> pd.DataFrame:
    """Fig. 5: accuracy gain (points, higher = better) over fine-tuning the reference expert's
    domain of the multi-domain expert, of the best of the top-1 and top-k domains selected by each
    method, per target, with the best and worst single domain ("best gain" / "worst gain")."""
    ft, sc, ref = ctx.domains("finetune"), ctx.domains("scores"), f"{ctx.reference_expert}-md"
    bounds = gain_bounds(ft, ref) if len(ft) else pd.DataFrame(columns=["target", "shots", "best_gain", "worst_gain"])
    bounds = pd.concat([bounds[["shots", "target", b]].assign(column=b.replace("_", " ")).rename(columns={b: "gain"})
                        for b in ("best_gain", "worst_gain")], ignore_index=True)
    ks = sorted({1, ctx.top_k})
    long = pd.concat([pd.concat([evaluate_selection(ft, sc, ref, k, ctx.probe_set)
                                 [["shots", "target", "method", f"top{k}_gain"]]
                                 .rename(columns={"method": "column", f"top{k}_gain": "gain"}), bounds])
                      .assign(selection=f"top-{k}") for k in ks], ignore_index=True)
    methods = method_order(set(long["column"]) - set(BOUNDS))
    long["panel"] = long["selection"] + ", shots: " + long["shots"].astype(str)
    names = [f"top-{k}, shots: {s}" for s in shots_order(long["shots"]) for k in ks]
    rank = {p: i for i, p in enumerate(names)}
    long = long[["selection", "shots", "target", "column", "gain", "panel"]].sort_values(
        ["panel", "target", "column"], key=lambda c: c.map(rank) if c.name == "panel" else c).reset_index(drop=True)
    return heatmaps(long, long["panel"], names, methods + BOUNDS, len(methods),
                    "Selecting the domain of the multi-domain expert: gain over the generalist's domain",
                    "accuracy gain (% points)", out_png)


def figure_summary(ctx) -> pd.DataFrame:
    """Figs. 6a/6b's rows of selection_summary: the scores and the learned recommenders (not the strategies);
    without that table (a figure rendered on its own), computed from the scores and recommendations."""
    summary, scores = ctx.table("selection_summary", optional=True), figure_rankings(ctx)
    if summary is None:
        summary = summarize_selection(ctx, selection_bootstrap(ctx, scores, name="figure_bootstrap"))
    return summary[summary["method"].isin(set(scores["method"]))]


def fig6a_trials_to_best(ctx, out_png) -> pd.DataFrame:
    """Fig. 6a: mean number of trials (fine-tunes in score order) to reach the best expert
    (lower = better, 1 is perfect), with its 95% interval (selection_summary)."""
    return summary_bars(figure_summary(ctx), "trials_to_best", "trials to best expert (mean over targets)",
                        "Selections needed to find the best expert (lower is better)", out_png)


def fig6b_spearman(ctx, out_png) -> pd.DataFrame:
    """Fig. 6b: mean Spearman correlation between scores and fine-tuned accuracy (higher = better), with
    its 95% interval (selection_summary) and the noise ceiling (noise_ceiling) as a band."""
    return summary_bars(figure_summary(ctx), "spearman", "Spearman correlation (mean over targets)",
                        "Score vs fine-tuned accuracy rank correlation (higher is better)", out_png,
                        ceiling=ctx.table("noise_ceiling", optional=True), value_range=(-1.05, 1.05))


def fig7_probe_size(ctx, out_png) -> pd.DataFrame:
    """Fig. 7: mean over targets of the top-k gain over the reference expert (points, higher =
    better) with scores computed on the main probe set and on the larger ones (more images per
    class, all images), per method (`probe_size_table`); only shot settings with a larger set."""
    k, ab = ctx.top_k, probe_size_table(ctx)
    data = ab[ab.groupby("shots")["probe"].transform("nunique") > 1].reset_index(drop=True)
    shots, methods = shots_order(data["shots"]), method_order(data["method"])
    probes = [p for p in ablation_probes(ctx.single("scores"), ctx.probe_set) if p in set(data["probe"])]
    width = max(5.0, 0.22 * len(methods) * max(len(probes), 1) + 2)
    fig, axes = readable_grid(len(shots), width, max(4.0, width / 2.5))  # one wide panel: taller, not 4:1
    for ax, shot in zip(axes, shots):
        bars(ax, data[data["shots"] == shot], "method", "probe", f"top{k}_gain", methods, probes,
             {p: probe_label(p) for p in probes})
        ax.set_xlabel("selection method")
        ax.set_ylabel(f"top-{k} gain over generalist (% points)")
        ax.set_title(f"shots: {shot}")
        ax.legend(fontsize=8, title="probe set")
    if not shots:
        no_data(axes[0], "probe-size ablation rows")
    fig.suptitle("Probe-set size for model selection")
    return save_figure(fig, data, out_png)


def theta_f(features: np.ndarray) -> np.ndarray:
    """Theta_F as Fig. 8 shows it (Sec. 3, eq. 5's kernel): the correlation between the samples'
    (centred) features, F F^T normalised to a unit diagonal; (N, d) -> (N, N), values in [-1, 1]."""
    f = features - features.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norms > 0, norms, 1.0)
    return f @ f.T


def fig8_theta_f(ctx, out_png, max_experts: int = 8) -> pd.DataFrame:
    """Fig. 8: Theta_F of each expert (rows) at the saved epochs of fine-tuning (columns), samples
    grouped by class, from the fine-tuning job's theta_f records (``ctx.records["theta_f"]``).
    The CSV holds, per expert and epoch, the mean Theta_F within and between classes and their
    difference (block-diagonal contrast: high when same-class features align)."""
    rows, images = [], []
    for path in ctx.records["theta_f"]:
        with np.load(path) as z:
            labels, epochs, expert = z["labels"], z["epochs"], str(z["expert"])
            same = labels[:, None] == labels[None, :]
            off_diagonal = ~np.eye(len(labels), dtype=bool)
            for epoch, features in zip(epochs, z["features"]):
                theta = theta_f(features.astype(np.float64))
                within, between = theta[same & off_diagonal].mean(), theta[~same].mean()
                rows.append({"expert": expert, "target": str(z["target"]), "shots": str(z["shots"]),
                             "lr": float(z["lr"]), "epoch": int(epoch), "within_class": within,
                             "between_class": between, "contrast": within - between})
                images.append((expert, int(epoch), theta))
    data = pd.DataFrame(rows)
    # the experts whose pre-training separates the target's classes best at epoch 0, as in the paper
    start = data[data["epoch"] == data["epoch"].min()].sort_values("contrast", ascending=False)
    shown = list(start["expert"])[:max_experts]
    epochs = sorted(data["epoch"].unique())
    fig, axes = plt.subplots(len(shown), len(epochs), figsize=(2.4 * len(epochs) + 1.2, 2.4 * len(shown) + 0.6),
                             squeeze=False, layout="constrained")  # room for the expert names and the title
    lookup = {(e, ep): t for e, ep, t in images}
    for i, expert in enumerate(shown):
        for j, epoch in enumerate(epochs):
            ax = axes[i, j]
            ax.imshow(lookup[(expert, epoch)], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"epoch {epoch}", fontsize=9)
            if j == 0:
                ax.set_ylabel(expert, fontsize=8)
    target = data["target"].iloc[0] if len(data) else ""
    fig.suptitle(f"Theta_F while fine-tuning on {target} (rows: experts by epoch-0 contrast)", fontsize=10)
    return save_figure(fig, data, out_png)
