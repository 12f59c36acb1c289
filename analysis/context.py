"""What every renderer of `analysis.outputs` reads: the result tables and the analysis settings."""
from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from analysis.outputs import data_path
from analysis.tables import AnalysisError, fill_probe, load_table, split_zoos
from pipeline.layout import Layout

PROBED = ("scores", "recommendations")  # tables whose rows carry a probe set


class Context:
    """The result tables of one benchmark and the settings of the analysis.

    Tables are read by name (the file stem under ``tables/``, or a figure's data under
    ``figures/``), from ``tables`` when given there, else from ``layout`` on first use; the score
    tables get their probe column filled with ``probe_set`` (`analysis.tables.fill_probe`).

    reference_expert: the expert every gain is measured against (e.g. ``resnet-generalist``);
    top_k: experts fine-tuned per method (Deshpande Fig. 4, Table 3); probe_set: the main probe set
    (e.g. ``per_class_25``); pools: Which Model's model pools, name -> `analysis.strategies.Pool`;
    records: the per-job records step=tables combines (zoo, finetune, scores, multidomain,
    target_dirs, theta_f: lists of paths); seed: seeds the learned recommenders.
    """

    def __init__(self, reference_expert: str, top_k: int, probe_set: str, *, layout: Layout | None = None,
                 tables: Mapping[str, pd.DataFrame] | None = None, pools: Mapping | None = None,
                 records: Mapping[str, list] | None = None, seed: int = 0):
        self.reference_expert, self.top_k, self.probe_set = reference_expert, int(top_k), probe_set
        self.layout, self.seed = layout, seed
        self.pools = dict(pools or {"all": None})
        self.records = dict(records or {})
        self._tables = {name: self._prepare(name, df) for name, df in (tables or {}).items()}
        self._memo: dict = {}

    def _prepare(self, name: str, df: pd.DataFrame | None) -> pd.DataFrame | None:
        return fill_probe(df, self.probe_set) if df is not None and name in PROBED else df

    def table(self, name: str, optional: bool = False) -> pd.DataFrame | None:
        """The result table ``name``; None for a missing optional one. Raises AnalysisError
        naming the file (or the table, without a layout) when a required one is missing."""
        if self._tables.get(name) is None:
            path = None if self.layout is None else data_path(self.layout, name)
            if path is not None and path.is_file():
                self._tables[name] = self._prepare(name, load_table(path))
            elif optional:
                return None
            elif path is None:
                raise AnalysisError(f"the result table {name!r} is needed but was not given")
            else:
                load_table(path)  # raises "table not found" naming the path
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
