"""A user's mistake is reported in one line; a programming error keeps its traceback."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable


class UserError(Exception):
    """A mistake of the user's (a config value, a missing file, an impossible request). Each stage
    raises its own subclass (DataPrepError, ZooTrainingError, FinetuneError, SelectionError,
    AnalysisError); its command line prints it as one line without a traceback."""


def one_line_errors(stage: str) -> Callable:
    """Decorate a stage's entry point (under `@hydra.main`): a UserError exits with
    `<stage>: error: <message>` (status 1); every other exception keeps its traceback."""

    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except UserError as err:
                raise SystemExit(f"{stage}: error: {err}") from None

        return run

    return wrap


def require_path(path, key: str, error: type[UserError]) -> Path:
    """`path` as a Path; raises `error` naming the config key when nothing exists there."""
    path = Path(path)
    if not path.exists():
        raise error(f"{key}={path}: no such file or directory")
    return path
