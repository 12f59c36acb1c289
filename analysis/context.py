"""What every renderer of `analysis.outputs` reads: the result tables and the analysis settings."""
from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from analysis.outputs import data_path
from analysis.tables import LR_SELECTIONS, AnalysisError, fill_probe, ground_truth_rows, load_table, split_zoos
from pipeline.layout import Layout

PROBED = ("scores", "recommendations")  # tables whose rows carry a probe set


class Context:
    """The result tables of one benchmark and the settings of the analysis.

    Tables are read by name (the file stem under ``tables/``, or a figure's data under
    ``figures/``), from ``tables`` when given there, else from ``layout`` on first use; the score
    tables get their probe column filled with ``probe_set`` (`analysis.tables.fill_probe`). The
    ``finetune`` table is served as the ground truth ``lr_selection`` names (`analysis.tables.ground_truth_rows`:
    seeds averaged; ``test``, the paper's, or ``validation``); `runs` gives its rows per seed.

    reference_expert: the expert every gain is measured against (e.g. ``resnet-generalist``);
    top_k: experts fine-tuned per method (Deshpande Fig. 4, Table 3); probe_set: the main probe set
    (e.g. ``per_class_25``); pools: Which Model's model pools, name -> `analysis.strategies.Pool`;
    records: the per-job records step=tables combines (zoo, finetune, scores, multidomain,
    target_dirs, theta_f: lists of paths); seed: seeds the learned recommenders.
    """

    def __init__(self, reference_expert: str, top_k: int, probe_set: str, *, layout: Layout | None = None,
                 tables: Mapping[str, pd.DataFrame] | None = None, pools: Mapping | None = None,
                 records: Mapping[str, list] | None = None, seed: int = 0, lr_selection: str = "test"):
        if lr_selection not in LR_SELECTIONS:
            raise AnalysisError(f"lr_selection={lr_selection!r} is not one of {list(LR_SELECTIONS)}")
        self.reference_expert, self.top_k, self.probe_set = reference_expert, int(top_k), probe_set
        self.layout, self.seed, self.lr_selection = layout, seed, lr_selection
        self.pools = dict(pools or {"all": None})
        self.records = dict(records or {})
        self._raw = {name: df for name, df in (tables or {}).items() if df is not None}
        self._tables: dict[str, pd.DataFrame] = {}
        self._memo: dict = {}

    def _prepare(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        if name == "finetune":
            return ground_truth_rows(df, self.lr_selection)
        return fill_probe(df, self.probe_set) if name in PROBED else df

    def runs(self, name: str = "finetune", optional: bool = False) -> pd.DataFrame | None:
        """The table ``name`` as written (the fine-tune table: one row per run, every seed); None for a
        missing optional one. Raises AnalysisError naming the file (or the table, without a layout) when a
        required one is missing."""
        if name not in self._raw:
            path = None if self.layout is None else data_path(self.layout, name)
            if path is not None and path.is_file():
                self._raw[name] = load_table(path)
            elif optional:
                return None
            elif path is None:
                raise AnalysisError(f"the result table {name!r} is needed but was not given")
            else:
                load_table(path)  # raises "table not found" naming the path
        return self._raw[name]

    def table(self, name: str, optional: bool = False) -> pd.DataFrame | None:
        """The result table ``name`` as the analyses read it (the probe column filled, the fine-tune table as
        the ground truth); None for a missing optional one. Raises AnalysisError as `runs`."""
        if name not in self._tables:
            raw = self.runs(name, optional)
            if raw is None:
                return None
            self._tables[name] = self._prepare(name, raw)
        return self._tables[name]

    def single(self, name: str) -> pd.DataFrame:
        """The single-domain zoo's rows of a table (the paper selects within each zoo apart)."""
        return split_zoos(self.table(name))[0]

    def domains(self, name: str) -> pd.DataFrame:
        """The rows of the multi-domain expert's domains ({arch}-{source}-md)."""
        return split_zoos(self.table(name))[1]

    def memo(self, key: str, make: Callable[[], object]):
        """``make()`` once per context: values several outputs of one step share."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]
