"""How hubctl fails: one exception type carrying what went wrong and what to try, printed without a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.markup import escape

from hub_operator.cli.console import stderr

P = ParamSpec("P")
R = TypeVar("R")

#: Exit codes scripts can rely on.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
"""``send --wait``: nothing referencing the message arrived in time."""
EXIT_REJECTED = 4
"""``send --wait``: the hub answered with an error report (RS-ERROR)."""
EXIT_INTERRUPTED = 130


class HubctlError(Exception):
    """A failure the user can act on: ``message`` says what happened, ``hint`` what to try."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turns a :class:`HubctlError` (or Ctrl-C) raised by a command into a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except HubctlError as error:
            stderr.print(f"[bold red]error:[/] {escape(error.message)}")
            if error.hint:
                stderr.print(f"[dim]hint:[/] {escape(error.hint)}")
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            stderr.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper
