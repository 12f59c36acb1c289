"""Command line of the analysis stage (Hydra):

    python -m analysis step=tables    results_dir=R "zoo_records=[...]" "finetune_records=[...]" "score_records=[...]"
        ["multidomain_records=[...]"] ["target_dirs=[...]"]
        -> tables/zoo_accuracy.csv, finetune.csv, scores.csv, targets.csv [, multidomain_accuracy.csv]
    python -m analysis step=evaluate  results_dir=R generalist=resnet-generalist [top_k=3]
        -> tables/selection_eval.csv, compute_cost.csv, regret.csv, parc_protocol.csv,
           probe_size_ablation.csv, gr_table2.csv [, selection_eval_multidomain.csv]
    python -m analysis step=figures   results_dir=R generalist=resnet-generalist [top_k=3] ["theta_f_records=[...]"]
        -> figures/fig2, fig4, fig6a, fig6b [, fig8]
    python -m analysis step=artifacts results_dir=R generalist=resnet-generalist [multidomain=true]
        -> every other table and figure of the four papers (analysis.artifacts), summary.md,
           and on the paper benchmark tables/published_*.csv
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import OmegaConf

from analysis.config import STEPS, AnalysisConfig
from analysis.tables import TABLE_FILES, AnalysisError, load_table, split_zoos, write_tables

log = logging.getLogger("analysis")


def _generalist(cfg) -> str:
    if OmegaConf.is_missing(cfg, "generalist"):
        raise AnalysisError(f"step={cfg.step} needs the generalist expert id, e.g. generalist=resnet-generalist")
    return cfg.generalist


def run(cfg: AnalysisConfig) -> list[Path]:
    """Run one step; returns the files written."""
    tables_dir, figures_dir = Path(cfg.results_dir) / "tables", Path(cfg.results_dir) / "figures"
    if cfg.step not in STEPS:
        raise AnalysisError(f"unknown step {cfg.step!r}; choose one of {', '.join(STEPS)}")
    if cfg.step == "tables":
        return list(write_tables(cfg.zoo_records, cfg.finetune_records, cfg.score_records, tables_dir,
                                 cfg.multidomain_records, cfg.target_dirs).values())

    # imported lazily so that step=tables does not pay for scipy/matplotlib
    from analysis.protocols import evaluate_selection, gain_bounds

    generalist, k = _generalist(cfg), int(cfg.top_k)
    if cfg.step == "artifacts":
        return artifacts(cfg, generalist, k)
    finetune, scores = (load_table(tables_dir / TABLE_FILES[n]) for n in ("finetune", "scores"))
    # the single-domain zoo (Fig. 4, 6, 7) and the multi-domain expert's domains (Fig. 5) are
    # selected among separately; Fig. 5's gains are over the generalist's domain ({generalist}-md)
    (finetune, finetune_md), (scores, scores_md) = split_zoos(finetune), split_zoos(scores)
    if cfg.step == "evaluate":
        from analysis.cost import compute_cost
        from analysis.protocols import parc_protocol, probe_size_ablation, regret_table
        from analysis.strategies import all_strategies

        from analysis.recommender import difficulty_table, recommend, table2

        zoo = load_table(tables_dir / TABLE_FILES["zoo"])
        # Guided Recommendation's recommenders, trained leave-one-target-out on the fine-tuning
        # history, rank experts like any score
        targets_csv = tables_dir / TABLE_FILES["targets"]
        targets = (difficulty_table(load_table(targets_csv), scores, generalist) if targets_csv.is_file()
                   else pd.DataFrame(columns=["target", "shots"]))
        if finetune["target"].nunique() >= 2 and set(zip(finetune["target"], finetune["shots"])) <= set(
                zip(targets["target"], targets["shots"])):
            learned = recommend(split_zoos(zoo)[0], finetune, scores, targets, seed=cfg.seed)
        else:
            log.warning("no learned recommenders: they need 2 or more fine-tuned targets, each in targets.csv")
            learned = scores.iloc[:0]
        # strategies (task-agnostic, hybrids, "<m>+l", ...) are evaluated as extra methods
        ranked = pd.concat([scores, learned, all_strategies(scores, zoo)], ignore_index=True)
        tables = {"selection_eval": evaluate_selection(finetune, ranked, generalist, k),
                  **({"selection_eval_multidomain": evaluate_selection(finetune_md, scores_md, f"{generalist}-md", k)}
                     if len(finetune_md) else {}),
                  "compute_cost": compute_cost(finetune, scores, generalist, k),
                  "regret": regret_table(finetune, ranked),
                  "parc_protocol": parc_protocol(finetune, ranked),
                  "probe_size_ablation": probe_size_ablation(finetune, scores, generalist, k),
                  "gr_table2": table2(pd.concat([scores, learned], ignore_index=True), finetune),
                  # the recommenders' predictions in the scores table's format (methods gr_*)
                  "recommendations": learned}
        out = []
        for name, df in tables.items():
            out.append(tables_dir / f"{name}.csv")
            df.to_csv(out[-1], index=False)
        return out

    from analysis import figures

    # the learned recommenders (step=evaluate) are selection methods like the scores
    recommendations = tables_dir / "recommendations.csv"
    if recommendations.is_file():
        scores = pd.concat([scores, split_zoos(load_table(recommendations))[0]], ignore_index=True)
    selection = evaluate_selection(finetune, scores, generalist, k)
    out = [figures_dir / f"{stem}.png" for stem in
           ("fig2_finetune_error", "fig4_top3_gain", "fig6a_trials_to_best", "fig6b_spearman")]
    figures.fig2_finetune_error(finetune, generalist, out[0])
    figures.fig4_top3_gain(selection, gain_bounds(finetune, generalist), out[1], k)
    figures.fig6a_trials_to_best(selection, out[2])
    figures.fig6b_spearman(selection, out[3])
    if cfg.theta_f_records:
        out.append(figures_dir / "fig8_theta_f.png")
        figures.fig8_theta_f(list(cfg.theta_f_records), out[-1])
    return out


def artifacts(cfg: AnalysisConfig, generalist: str, k: int) -> list[Path]:
    """Every other table and figure of the four papers (analysis.artifacts), the comparison with
    the published numbers (paper benchmark only) and summary.md."""
    from analysis.artifacts import render_all
    from analysis.published import summary_markdown, write_comparisons
    from analysis.strategies import arch_pool

    tables_dir = Path(cfg.results_dir) / "tables"
    ctx = {name: load_table(tables_dir / TABLE_FILES[name]) for name in ("zoo", "finetune", "scores")}
    ctx.update(multidomain=load_table(tables_dir / TABLE_FILES["multidomain"]) if cfg.multidomain else None,
               generalist=generalist, top_k=k,
               pools={name: None if archs is None else arch_pool(*archs) for name, archs in (cfg.pools or {"all": None}).items()})
    out = render_all(ctx, cfg.results_dir, cfg.multidomain)
    out += write_comparisons(ctx, tables_dir)
    summary = Path(cfg.results_dir) / "summary.md"
    summary.write_text(summary_markdown(ctx, tables_dir))
    return out + [summary]


@hydra.main(version_base="1.3", config_path="../configs", config_name="analysis")
def main(cfg: AnalysisConfig) -> None:
    try:
        for path in run(cfg):
            print(path)
    except AnalysisError as e:
        # a user mistake: one line on stderr, exit status 1, no traceback
        raise SystemExit(f"analysis: error: {e}") from None


if __name__ == "__main__":
    main()
