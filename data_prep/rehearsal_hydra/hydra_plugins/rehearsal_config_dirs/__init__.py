"""A Hydra search-path plugin that puts the folders of $REHEARSAL_CONFIG_DIRS (os.pathsep-separated)
BEFORE configs/, so a benchmark's config_dirs shadow configs/dataset/<name>.yaml of the same name.

Why: pipeline.stages passes config_dirs as `hydra.searchpath`, which Hydra appends after the primary
config folder (hydra/_internal/config_loader_impl.py), so a config_dirs file whose name also exists
in configs/ is never used, contrary to the documented contract. The rehearsal's dataset configs have
the paper datasets' names, so `make rehearsal` (data_prep/rehearsal.py) puts this folder on PYTHONPATH
for its Snakemake run only. With the fix in pipeline/stages.py this plugin changes nothing.
"""
import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class RehearsalConfigDirs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        dirs = [d for d in os.environ.get("REHEARSAL_CONFIG_DIRS", "").split(os.pathsep) if d]
        for d in reversed(dirs):
            search_path.prepend(provider="rehearsal config_dirs", path=f"file://{os.path.abspath(d)}")
