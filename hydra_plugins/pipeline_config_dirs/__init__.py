"""A Hydra search-path plugin: the folders of $PIPELINE_CONFIG_DIRS (os.pathsep-separated) come BEFORE
configs/, so a benchmark's `config_dirs` can add configs and also shadow configs/<group>/<name>.yaml
of the same name (`hydra.searchpath` would append them after configs/, so a shadowing file would
never be read: hydra/_internal/config_loader_impl.py). pipeline.stages sets the variable for every
stage command line and for `compose`.
"""
import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

VARIABLE = "PIPELINE_CONFIG_DIRS"


class PipelineConfigDirs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        dirs = [d for d in os.environ.get(VARIABLE, "").split(os.pathsep) if d]
        for d in reversed(dirs):
            search_path.prepend(provider="benchmark config_dirs", path=f"file://{os.path.abspath(d)}")
