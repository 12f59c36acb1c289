"""A user's mistake is reported in one line; a programming error keeps its traceback."""
from __future__ import annotations

import functools
from typing import Callable


class UserError(Exception):
    """A mistake of the user's (a config value, a missing file, an impossible request): each stage
    raises its own subclass, and its command line prints it as one line without a traceback."""


def one_line_errors(stage: str, error: type[UserError]) -> Callable:
    """Decorate a stage's entry point: `error` exits with `<stage>: error: <message>` (status 1);
    every other exception propagates with its traceback."""

    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except error as err:
                raise SystemExit(f"{stage}: error: {err}") from None

        return run

    return wrap
