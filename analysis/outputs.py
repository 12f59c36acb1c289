"""The registry of every table and figure the analysis writes: one entry per output, from which
the analysis steps (`python -m analysis step=<step>` renders `outputs(step, ...)`), the Snakemake
rules' outputs and inputs (rules/analysis.smk) and the report's captions (`write_captions`) are
derived.

An `Output` names its file stem (``tables/<name>.csv``; a figure: ``figures/<name>.png`` and the
data behind it, ``figures/<name>.csv``; the summary: ``summary.md``), the paper it reproduces,
the step that writes it, the result tables it reads, its renderer and its caption, and the
conditions under which the benchmark has it (``multidomain``: a multi-domain expert;
``paper``: the paper's zoo, for the published numbers; ``theta_f``: a Theta_F grid point).

A renderer is ``"module:function"``, imported only when rendered, so that importing this module
stays cheap (the Snakefile imports it): a table's renderer maps the `analysis.context.Context`
to the table, a figure's takes the .png path too and writes the figure and its data, the
summary's returns Markdown. Captions may name ``{top_k}``, ``{probe_set}`` and ``{probe_label}``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.layout import Layout, probe_label

STEPS = ("tables", "evaluate", "figures", "artifacts")
KINDS = ("table", "figure", "markdown")
CONDITIONS = ("multidomain", "paper", "theta_f")
PAPERS = {"benchmark": "this benchmark's result tables",
          "deshpande": "Deshpande et al. 2021, A linearized framework and a new benchmark for model selection",
          "parc": "Bolya et al. 2021, Scalable Diverse Model Selection for Accessible Transfer Learning (PARC)",
          "which_model": "Renggli et al. 2022, Which Model to Transfer? Finding a Needle in the Growing Haystack",
          "guided": "Li et al. 2023, Guided Recommendation for Model Fine-Tuning"}
CATEGORIES = {"table": "Tables", "figure": "Figures", "markdown": "Summary"}


@dataclass(frozen=True)
class Output:
    name: str  # file stem, fixed: other tools read these files
    paper: str  # a key of PAPERS
    kind: str  # table | figure | markdown
    step: str  # the analysis step that writes it
    reads: tuple[str, ...]  # result tables (or figure data) its renderer reads, by name
    render: str  # "module:function"
    when: tuple[str, ...]  # conditions of CONDITIONS, all needed
    caption: str  # reStructuredText, may name {top_k}, {probe_set}, {probe_label}

    @property
    def category(self) -> str:
        """The report's section: Tables, Figures, Summary or Published numbers."""
        return "Published numbers" if self.name.startswith("published_") else CATEGORIES[self.kind]

    def renderer(self) -> Callable:
        module, function = self.render.split(":")
        return getattr(importlib.import_module(module), function)

    def applies(self, multidomain: bool, theta_f: bool, paper: bool) -> bool:
        flags = {"multidomain": multidomain, "theta_f": theta_f, "paper": paper}
        return all(flags[c] for c in self.when)


def published(what: str) -> str:
    return (f"**Reproduced vs published: {what}.** Every number the paper prints, with the value this run "
            "reproduced beside it (``reproduced``), the published one (``published``), their ``difference`` "
            "(reproduced minus published) and ``source`` (paper, table, and any caveat of the transcription). "
            "Rows the run does not reproduce stay empty; ``published_methods`` says which reproduced method "
            "(variant) each row compares with, and why a row is empty. Written for the paper benchmark only.")


def _o(name, paper, kind, step, render, *, reads=(), when=(), caption) -> Output:
    return Output(name, paper, kind, step, tuple(reads), f"analysis.{render}", tuple(when), caption)


# in the order they are rendered: an output reading another one of its step comes after it
OUTPUTS: dict[str, Output] = {o.name: o for o in (
    _o("zoo_accuracy", "benchmark", "table", "tables", "tables:zoo_accuracy",
       caption=("**Model zoo (cf. Table 1).** One row per expert: architecture, source dataset, initialisation "
                "(``scratch`` or from the ``generalist`` expert), test accuracy (%) on the source dataset's "
                "test split, number of parameters, depth and training wall-clock seconds. Expert ids read "
                "``{{arch}}-{{source}}`` (from scratch) or ``{{arch}}-{{source}}-init`` (initialised from the "
                "generalist).")),
    _o("finetune", "benchmark", "table", "tables", "tables:finetune",
       caption=("**Fine-tuning results.** One row per expert × target task × shot setting × initial learning "
                "rate: test accuracy (%) on the full test set of the target and wall-clock seconds of that run. "
                "Analyses take, per expert, target and shots, the best accuracy over the learning rates and "
                "count the seconds of the whole learning-rate grid as the cost of one fine-tune.")),
    _o("scores", "benchmark", "table", "tables", "tables:scores",
       caption=("**Model selection scores.** One row per expert × target task × shot setting × selection "
                "method: the score (higher means the expert is predicted to fine-tune better), the seconds "
                "spent in the score function, and ``feature_seconds``, the shared forward pass that extracted "
                "that expert's features on the target. The ``random`` method's seeded scores are listed here, "
                "but evaluations use its exact expectation over random orders instead.")),
    _o("targets", "benchmark", "table", "tables", "tables:targets",
       caption=("**Target tasks (dataset meta-features).** Per target task and shot setting: the number of "
                "training images of that setting and the number of classes, as prepared by data_prep. With the "
                "fixed backbone's linear-probe accuracy (task difficulty) these are the dataset features of "
                "Guided Recommendation's recommenders.")),
    _o("score_failures", "benchmark", "table", "tables", "tables:score_failures",
       caption=("**Failed scores.** Every selection method that raised an error on one expert, target task, "
                "shot setting and probe set (``error``: its message); the other methods and the feature caches "
                "were kept. Such a method has no score there and is left out of that target's evaluation. "
                "Empty when every score was computed.")),
    _o("data_notes", "benchmark", "table", "tables", "tables:data_notes",
       caption=("**Data notes.** What data preparation changed in each target task (its ``stats.json``): "
                "``short_class``, a class with fewer training ``images`` than the shot setting's count, trained "
                "on all it has; ``dropped_file`` (``path``) and ``dropped_class``, left out for ``reason``. "
                "Empty when every target was prepared as configured.")),
    _o("multidomain_accuracy", "deshpande", "table", "tables", "tables:multidomain_accuracy",
       when=("multidomain",),
       caption=("**Multi-domain expert (Deshpande Table 2).** Top-1 test accuracy on each source of the "
                "multi-domain network in each variant: ``shared`` (one network, per-source heads), ``multi_bn`` "
                "(per-source BatchNorm) and ``adapter`` (per-source BatchNorm and parallel residual adapters). "
                "Every epoch draws the same number of images from each source (at most 100K in the paper, with "
                "replacement beyond a source's size). Compare with the single-domain experts of "
                "``zoo_accuracy``.")),
    _o("selection_eval", "deshpande", "table", "evaluate", "deshpande:selection_eval",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**Evaluation of model selection (Sec. 4.3).** One row per method × target task × shot setting: "
                "``spearman`` (rank correlation of scores with best fine-tuned accuracy), ``top{top_k}_gain`` "
                "(best accuracy among the method's top-{top_k} experts minus the generalist's, in percentage "
                "points), ``trials_to_best`` (expected number of fine-tunes in score order until a best expert "
                "is found) and ``n_experts`` (the candidate pool). Score ties and the ``random`` method use "
                "exact expectations over random tie-breaking. These rows feed Figs. 4 and 6.")),
    _o("selection_eval_multidomain", "deshpande", "table", "evaluate", "deshpande:selection_eval_multidomain",
       when=("multidomain",), reads=("finetune", "scores"),
       caption=("**Selection among the domains of the multi-domain expert (Deshpande Fig. 5).** The same "
                "protocols as the single-domain table, with the Multi-BN expert's domains as the zoo: "
                "``top{top_k}_gain`` is the accuracy gain, in points, of fine-tuning the best of the "
                "top-{top_k} selected domains over fine-tuning the generalist's (ImageNet's) domain of the same "
                "network; correlations and trials to best as in the single-domain table. Higher gains and "
                "correlations, fewer trials are better.")),
    _o("compute_cost", "deshpande", "table", "evaluate", "deshpande:compute_cost",
       reads=("finetune", "scores"),
       caption=("**Computation cost (cf. Table 3).** Run time, averaged over target tasks per shot setting, as "
                "a multiple of fine-tuning the generalist expert (whole learning-rate grid) on the same target: "
                "``brute_force`` fine-tunes every expert of the zoo; ``top{top_k}_finetune`` fine-tunes only "
                "the method's top-{top_k} experts; ``score`` computes the method's scores for every expert "
                "(shared feature extraction plus the score itself). Below 1 means cheaper than a single "
                "generalist fine-tune.")),
    _o("regret", "which_model", "table", "evaluate", "which_model:regret",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**Regret per budget (Which Model to Transfer?, eq. 1-2).** For every method or strategy, "
                "target task, shot setting and budget B (the number of experts one may fine-tune): "
                "``abs_regret`` is the best fine-tuned accuracy in the zoo minus the best accuracy among the B "
                "selected experts (percentage points); ``rel_regret`` is the paper's relative regret r(m), the "
                "relative delta (eq. 2) between the oracle and the selection, in [0, 1]. For both, lower is "
                "better and 0 means the best expert was among the B. ``rel_delta`` is the relative delta "
                "between the method and Random selection at the same budget (positive: better than Random). "
                "Random and ties use the exact expectation over random choices.")),
    _o("parc_protocol", "parc", "table", "evaluate", "parc:protocol_table",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**PARC's protocol (Bolya et al., Tables 1-3).** Each method scores every expert on 5 "
                "independent probe sets of the full target training data (at least 2 images per class each); "
                "per draw, the Pearson correlation between scores and fine-tuned accuracy is averaged over "
                "targets; the table gives the mean and standard deviation over the draws, x100 as PARC reports. "
                "\"<method>+l\" rows add PARC's depth term.")),
    _o("probe_size_ablation", "deshpande", "table", "evaluate", "deshpande:probe_size_table",
       reads=("finetune", "scores"),
       caption=("**Probe-set size ablation (Deshpande et al., Fig. 7).** Mean accuracy gain over the generalist "
                "of the best of each method's top-{top_k} experts, with scores computed on the main probe set "
                "(``{probe_set}``: {probe_label}), 50 per class, or the whole training set of the full target "
                "task. Higher is better; a method that is stable across rows needs only the small probe set.")),
    _o("gr_table2", "guided", "table", "evaluate", "guided:gr_table2",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**Guided Recommendation, Table 2 style (Li et al.).** Mean Pearson correlation, over target "
                "tasks, between each method's prediction and the fine-tuned accuracy of the experts, one column "
                "per shot setting. ``gr_linear`` / ``gr_fm`` are the linear-regression and "
                "factorization-machine recommenders on dataset and model meta-features (d, m), trained "
                "leave-one-target-out on the other targets' fine-tuning results; ``+scores`` adds every "
                "selection score as a feature, ``+<score>`` one score alone (the scores of Li et al.'s Table 2). The "
                "scores themselves are listed for comparison. Higher is better.")),
    _o("recommendations", "guided", "table", "evaluate", "guided:recommendations",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**Guided Recommendation's predictions.** For every expert, target and shot setting, the "
                "fine-tuning score predicted by the linear (``gr_linear``) and factorization-machine "
                "(``gr_fm``) recommenders, with (``+scores``) and without the selection scores as extra "
                "features, each trained on every other target's fine-tuning results (leave one target out). "
                "Same columns as ``scores.csv``: these methods go through every protocol (selection_eval, "
                "regret, Figs. 4 and 6) like a hand-designed score.")),
    _o("fig2_finetune_error", "deshpande", "figure", "figures", "deshpande:fig2_finetune_error",
       reads=("finetune",),
       caption=("**Fine-tuning with the model zoo (cf. Fig. 2 of Deshpande et al. 2021).** Top-1 test error "
                "(100 minus the best test accuracy over the learning-rate grid 0.01/0.005/0.001) of every "
                "expert fine-tuned on every target task (horizontal axis), one panel per shot setting. For each "
                "target, the red star is the generalist expert (ImageNet's role), followed by one column of "
                "markers per architecture: filled markers were initialised from the generalist, hollow ones "
                "trained from scratch. A black ◀ flags experts with lower error than the generalist. Lower is "
                "better; the CSV next to the figure holds every plotted point.")),
    _o("fig4_top3_gain", "deshpande", "figure", "figures", "deshpande:fig4_top3_gain",
       reads=("finetune", "scores", "recommendations"),
       caption=("**Model selection among single-domain experts (cf. Fig. 4).** Accuracy gain, in percentage "
                "points, over fine-tuning the generalist expert, obtained by fine-tuning the top-k (k = "
                "{top_k}) experts ranked by each selection method (columns) and keeping the best, per target "
                "task (rows) and shot setting (panels). Ties in scores, and the ``random`` baseline, use the "
                'exact expectation over random tie-breaking. "best gain" / "worst gain" are the best and worst '
                "single experts of the zoo, the upper and lower bounds for any method. Green is better, red is "
                "worse than the generalist; grey cells have no result.")),
    _o("fig6a_trials_to_best", "deshpande", "figure", "figures", "deshpande:fig6a_trials_to_best",
       reads=("finetune", "scores", "recommendations"),
       caption=("**Trials to find the best expert (cf. Fig. 6a).** Number of experts one has to fine-tune, in "
                "descending order of each method's score, until reaching an expert with the highest fine-tuned "
                "accuracy, averaged over target tasks (bars: mean, whiskers: standard deviation over targets), "
                "one colour per shot setting. Tied scores count their expected position; ``random`` is the "
                "expectation over random orders, (m+1)/(b+1) for m experts with b best ones. Lower is better; 1 "
                "is perfect.")),
    _o("fig6b_spearman", "deshpande", "figure", "figures", "deshpande:fig6b_spearman",
       reads=("finetune", "scores", "recommendations"),
       caption=("**Scores as a proxy for fine-tuning accuracy (cf. Fig. 6b).** Spearman rank correlation "
                "between each method's selection scores and the experts' best fine-tuned test accuracy, "
                "computed per target task and averaged over targets (bars: mean, whiskers: standard deviation "
                "over targets), one colour per shot setting. Higher is better; ``random`` is 0, its expectation "
                "over random orders.")),
    _o("fig8_theta_f", "deshpande", "figure", "figures", "deshpande:fig8_theta_f",
       when=("theta_f",),
       caption=("**Theta_F during fine-tuning (Deshpande Fig. 8).** For the benchmark's ``theta_f`` grid point "
                "(a target, shot setting and learning rate), each row is an expert and each column an epoch of "
                "its fine-tuning (0, half-way, end): the correlation between the penultimate features of the "
                "target's probe images (``{probe_set}``: {probe_label}), samples grouped by class. The ideal is "
                "a block diagonal (same-class features correlated, different classes not); the CSV gives "
                "within- and between-class means and their difference per expert and epoch. Rows are ordered by "
                "that difference at epoch 0, which is what LFC measures before any fine-tuning.")),
    _o("table1_zoo_accuracy", "deshpande", "table", "artifacts", "deshpande:table1_zoo_accuracy",
       reads=("zoo_accuracy",),
       caption=("**Model zoo of single-domain experts (Deshpande et al., Table 1).** Top-1 test accuracy (%) of "
                "every single-domain expert on the test split of its own source, one row per architecture and "
                "initialisation (``scratch``: the paper's ×, ``generalist``: its ✓, trained from the "
                "generalist's weights), one column per source ordered by increasing number of training images. "
                "The generalist's own source has no ``generalist`` entry (the paper's \"-\"). Compare the rows "
                "to see what pre-training on the generalist buys.")),
    _o("table2_multidomain", "deshpande", "table", "artifacts", "deshpande:table2_multidomain",
       when=("multidomain",), reads=("zoo_accuracy", "multidomain_accuracy"),
       caption=("**Multi-domain expert (Deshpande et al., Table 2).** Top-1 test accuracy (%) on each source of "
                "the single-domain expert of the multi-domain expert's architecture (initialised from the "
                "generalist where such an expert exists, as the paper's \"Single Domain\" column) and of the "
                "multi-domain network in each variant: ``shared`` (one network), ``multi_bn`` (per-source "
                "BatchNorm) and ``adapter`` (per-source residual adapters). Higher is better; the paper "
                "fine-tunes and selects among the Multi-BN domains.")),
    _o("table3_compute", "deshpande", "table", "artifacts", "deshpande:table3_compute",
       reads=("finetune", "scores"),
       caption=("**Computation cost (Deshpande et al., Table 3, laid out as the paper).** One row per shot "
                "setting, averaged over targets, as multiples of one fine-tune (whole learning-rate grid) of "
                "the generalist: ``brute_force`` fine-tunes every single-domain expert, "
                "``top{top_k}_finetune:<method>`` only the method's top-{top_k}, ``score:<method>`` computes "
                "the method's scores for the whole zoo (shared forward pass included). The same numbers in long "
                "format are ``compute_cost``. Below 1 is cheaper than a single generalist fine-tune.")),
    _o("fig1_error_vs_shots", "deshpande", "figure", "artifacts", "deshpande:fig1_error_vs_shots",
       reads=("finetune",),
       caption=("**Model zoo vs the generalist (cf. Deshpande et al., Fig. 1b).** Top-1 test error (%) against "
                "the number of training images per class, for the best expert of the zoo and for the "
                "generalist, both with the best of the learning-rate grid (the paper's HPO). As in the paper, "
                "experts trained on the generalist's own source are left out of the zoo; experts initialised "
                "from the generalist stay. The first panel averages over the targets present at every point, "
                "the others show each target; lower is better.")),
    _o("fig3_multidomain_finetune", "deshpande", "figure", "artifacts", "deshpande:fig3_multidomain_finetune",
       when=("multidomain",), reads=("zoo_accuracy", "finetune"),
       caption=("**Fine-tuning the multi-domain expert (cf. Deshpande et al., Fig. 3).** Top-1 test error (%) "
                "on each full target of: the generalist (red star) and the generalist's domain of the "
                "multi-domain expert (red diamond); every other domain of the multi-domain expert (green); the "
                "single-domain experts of the same architecture (blue squares, filled: initialised from the "
                "generalist). A black ◀ flags domains with lower error than the single-domain generalist. The "
                "spread of the green points shows how much choosing the domain matters.")),
    _o("fig5_multidomain_selection", "deshpande", "figure", "artifacts", "deshpande:fig5_multidomain_selection",
       when=("multidomain",), reads=("finetune", "scores"),
       caption=("**Selecting a domain of the multi-domain expert (cf. Deshpande et al., Fig. 5).** Accuracy "
                "gain, in points, over fine-tuning the generalist's domain of the multi-domain expert, of the "
                "best of the top-1 (left) and top-{top_k} (right) domains ranked by each method (columns), per "
                'full target (rows). "best gain" / "worst gain" are the best and worst single domains, the '
                "bounds for any method; ``random`` and ties use the exact expectation over random choices. "
                "Green is better, red worse than the generalist's domain.")),
    _o("fig7_probe_size", "deshpande", "figure", "artifacts", "deshpande:fig7_probe_size",
       reads=("finetune", "scores"),
       caption=("**Probe-set size (cf. Deshpande et al., Fig. 7).** Mean over targets of the accuracy gain over "
                "the generalist of the best of each method's top-{top_k} experts, with scores computed on the "
                "main probe set (``{probe_set}``: {probe_label}), 50 per class, or all training images of the "
                "full targets. Bars that stay level across probe sets mean the small probe set suffices; higher "
                "is better.")),
    _o("parc_table1", "parc", "table", "artifacts", "parc:parc_table1",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**PARC's benchmark table (Bolya et al., Table 1).** Per method: the mean over targets of the "
                "Pearson correlation (×100) between scores and fine-tuned accuracy over all experts, as mean "
                "and standard deviation over the probe-set draws (``n_draws``); ``time_ms`` (± ``time_ms_std`` "
                "over experts, targets and draws) is the score alone per transfer, as PARC reports it, and "
                "``time_with_features_ms`` adds the shared forward pass. Higher correlation and lower time are "
                "better. ``heuristic`` is PARC's baseline (eq. 4: depth + log of source and target images; "
                "``ref_heuristic``: as PARC's code computes it), which needs no features and has no time.")),
    _o("parc_table2_modes", "parc", "table", "artifacts", "parc:parc_table2_modes",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**Evaluation modes (Bolya et al., Table 2).** Mean Pearson correlation (×100, mean and std "
                "over probe draws) computed over different sets: ``source_and_arch`` over every expert of a "
                "target (PARC eq. 2); ``architecture`` over the architectures sharing one pre-training (source "
                "and initialisation); ``source`` over the pre-trainings of one architecture; ``target`` over "
                "the targets for one fixed expert (eq. 5, transferability estimation). With two architectures "
                "an ``architecture`` group holds two experts, so each of its correlations is ±100.")),
    _o("parc_table3_depth", "parc", "table", "artifacts", "parc:parc_table3_depth",
       reads=("zoo_accuracy", "finetune", "scores", "targets"),
       caption=("**Modelling capacity to change (Bolya et al., Table 3).** Mean Pearson correlation (×100, mean "
                "and std over probe draws) of every method as is (``original``) and with PARC's \"+l\" term "
                "(``depth``): scores z-scored per target, plus the expert's depth over the zoo's largest depth "
                "(PARC eq. 6). A higher ``depth_mean`` means the depth heuristic helps the method on this zoo.")),
    _o("parc_fig2_pca", "parc", "figure", "artifacts", "parc:parc_fig2_pca",
       reads=("finetune", "scores"),
       caption=("**PCA feature reduction (cf. Bolya et al., Fig. 2a).** Mean Pearson correlation (×100; points: "
                "mean, whiskers: std over probe draws) of each score computed on features reduced by PCA to f "
                "dimensions, for every score with ``<score>_pca<f>`` variants in the benchmark config; ``full`` "
                "is the unreduced score. A rising curve towards small f means the score benefits from feature "
                "calibration.")),
    _o("wm_regret_b12", "which_model", "figure", "artifacts", "which_model:wm_regret_b12",
       reads=("zoo_accuracy", "finetune", "scores"),
       caption=("**Regret of model-search strategies (cf. Which Model to Transfer?, Figs. 3-4).** Relative "
                "regret r(m), the relative delta (eq. 2) between the best fine-tuned accuracy of the pool and "
                "the best among the B experts a strategy picks, per target (bars) with budget B = 1 "
                "(transparent) and B = 2 (solid); one row per strategy (task-agnostic, linear = ``logistic``, "
                "kNN = ``knn_loo``, hybrids: the task-agnostic top-1 plus the task-aware top-(B-1)), one column "
                "per model pool and shot setting. Lower is better; 0 means the best expert was picked.")),
    _o("wm_zero_regret", "which_model", "figure", "artifacts", "which_model:wm_zero_regret",
       reads=("zoo_accuracy", "finetune", "scores"),
       caption=("**Optimal picks against the budget (cf. Which Model to Transfer?, Fig. 7).** Fraction of "
                "targets on which the B experts a strategy picks include a best one (zero regret), against the "
                "budget B, per model pool and shot setting. The task-agnostic oracle ranks experts by their "
                "mean fine-tuned accuracy over all targets (not available in practice); ``random`` and ties use "
                "the exact probability over random choices. Higher and earlier is better.")),
    _o("published_deshpande_table1", "deshpande", "table", "artifacts", "published:published_deshpande_table1",
       when=("paper",), reads=("table1_zoo_accuracy",),
       caption=published("Deshpande et al. Table 1 (top-1 accuracy of each expert on its source)")),
    _o("published_deshpande_table2", "deshpande", "table", "artifacts", "published:published_deshpande_table2",
       when=("paper", "multidomain"), reads=("table2_multidomain",),
       caption=published("Deshpande et al. Table 2 (multi-domain variants per source)")),
    _o("published_deshpande_table3", "deshpande", "table", "artifacts", "published:published_deshpande_table3",
       when=("paper",), reads=("compute_cost",),
       caption=published("Deshpande et al. Table 3 (compute as multiples of fine-tuning the ImageNet expert)")),
    _o("published_parc_mean_pc", "parc", "table", "artifacts", "published:published_parc_mean_pc",
       when=("paper",), reads=("parc_table1", "parc_table3_depth"),
       caption=published("PARC Table 1, Table 4 and Fig. 2b (mean Pearson correlation per method)")),
    _o("published_parc_table2", "parc", "table", "artifacts", "published:published_parc_table2",
       when=("paper",), reads=("parc_table2_modes",),
       caption=published("PARC Table 2 (evaluation modes)")),
    _o("published_parc_table3", "parc", "table", "artifacts", "published:published_parc_table3",
       when=("paper",), reads=("parc_table3_depth",),
       caption=published("PARC Table 3 (each method with and without the +l depth term)")),
    _o("published_guided_table2", "guided", "table", "artifacts", "published:published_guided_table2",
       when=("paper",), reads=("gr_table2",),
       caption=published("Guided Recommendation Table 2 (mean Pearson correlation of the recommenders)")),
    _o("published_methods", "benchmark", "table", "artifacts", "published:published_methods",
       when=("paper",), reads=("compute_cost", "parc_table1", "parc_table2_modes", "parc_table3_depth", "gr_table2"),
       caption=("**Which reproduced method each published row compares with.** Per published table and method: "
                "``reproduced_method`` (``ref_<method>``, the variant with ``as_reference: true`` that reproduces the "
                "paper's own code, where the benchmark has it; ``<method>+l`` from the depth-calibrated table), the "
                "published ``rows`` and how many got a reproduced value, and a ``note``: the reference variant, the "
                "probe network standing for PARC's, or why a row stays empty. Written for the paper benchmark only.")),
    _o("summary", "benchmark", "markdown", "artifacts", "published:summary_markdown",
       reads=("zoo_accuracy", "finetune", "scores", "selection_eval", "parc_protocol", "wm_zero_regret",
              "score_failures", "data_notes",
              "published_deshpande_table1", "published_deshpande_table2", "published_deshpande_table3",
              "published_parc_mean_pc", "published_parc_table2", "published_parc_table3",
              "published_guided_table2"),
       caption=("**Summary.** The key numbers of the run in one page: mean rank and Pearson correlation of "
                "every method with the fine-tuned accuracy, mean top-k gain over the generalist and trials to "
                "the best expert, PARC's mean and standard deviation over probe draws, the fraction of targets "
                "with zero regret at budgets 1-3, the failed scores and data notes (when there are any) and, on "
                "the paper benchmark, the mean absolute difference to each published table.")),
)}


def outputs(step: str | None = None, *, multidomain: bool, theta_f: bool, paper: bool) -> list[Output]:
    """The outputs of a benchmark (of one ``step``, or of all), in rendering order: those whose
    conditions hold for a benchmark with / without a multi-domain expert, a Theta_F grid point
    and the paper's zoo."""
    return [o for o in OUTPUTS.values() if (step is None or o.step == step) and o.applies(multidomain, theta_f, paper)]


def files(layout: Layout, output: Output) -> list[Path]:
    """Every file an output writes: a table's CSV, a figure's .png and its data (.csv), summary.md."""
    if output.kind == "figure":
        return [layout.figure(output.name), layout.figure_data(output.name)]
    return [layout.summary()] if output.kind == "markdown" else [layout.table(output.name)]


def data_path(layout: Layout, name: str) -> Path:
    """Where the data of output ``name`` is read back from (a figure: the CSV behind it)."""
    output = OUTPUTS[name]
    return files(layout, output)[-1]


def step_inputs(layout: Layout, step: str, **conditions) -> list[Path]:
    """The files a step reads that other steps write (the Snakemake rule's inputs)."""
    own = {o.name for o in OUTPUTS.values() if o.step == step}
    active = {o.name for o in outputs(None, **conditions)}
    names = dict.fromkeys(r for o in outputs(step, **conditions) for r in o.reads if r not in own and r in active)
    return [data_path(layout, name) for name in names]


def render(output: Output, ctx, layout: Layout) -> Path:
    """Render one output with ``ctx`` (`analysis.context.Context`) into ``layout``; returns its
    main file (a figure: the .png)."""
    path = files(layout, output)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    if output.kind == "figure":
        output.renderer()(ctx, path)
    elif output.kind == "table":
        output.renderer()(ctx).to_csv(path, index=False)
    else:
        path.write_text(output.renderer()(ctx))
    return path


def caption(output: Output, top_k: int, probe_set: str) -> str:
    """An output's caption with the benchmark's top-k and main probe set filled in."""
    return output.caption.format(top_k=top_k, probe_set=probe_set, probe_label=probe_label(probe_set))


def write_captions(folder, top_k: int, probe_set: str) -> Path:
    """Write ``<name>.rst`` for every output into ``folder`` (the report's captions; a file is
    rewritten only when its text changed); returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for output in OUTPUTS.values():
        path, text = folder / f"{output.name}.rst", caption(output, top_k, probe_set) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return folder
