"""What every ``tuwen`` command module shares: the consoles, the workspace argument and :func:`friendly`.

It imports only Typer and Rich, so the command modules (``cli_models``, ``cli_recommend``,
``cli_search``, ``cli_serve``) depend on it instead of on ``tuwen.cli``: ``tuwen.cli`` imports them
and registers their commands explicitly, and nothing imports ``tuwen.cli`` back (no import cycle).
Heavy libraries (torch, LanceDB, pandas, scikit-learn) load inside the commands that use them, which
keeps ``tuwen --help`` fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from tuwen.shop import Shop

PIPED_WIDTH = 200  # columns when output goes to a pipe or a file: tables print whole instead of squeezed to 80


def console_width(stream: TextIO | None) -> int | None:
    """Rich's width for ``stream``: the terminal's own when it is one (or $COLUMNS when set), else wide.

    Rich falls back to 80 columns when output is piped, which cuts table headers to ``accur…``;
    a script reading the output wants whole words, so a pipe gets :data:`PIPED_WIDTH`.
    """
    if os.environ.get("COLUMNS"):
        return None
    is_terminal = getattr(stream, "isatty", None)
    return None if is_terminal is not None and is_terminal() else PIPED_WIDTH


out = Console(soft_wrap=True, width=console_width(sys.stdout))
err = Console(stderr=True, soft_wrap=True, width=console_width(sys.stderr))

WorkspaceArg = Annotated[Path, typer.Argument(help="Workspace folder (created on first ingest).")]


def user_errors() -> tuple[type[BaseException], ...]:
    """The library's user-facing error types; imported when a command fails, not when the CLI starts."""
    from tuwen.ingest.generic import MappingError
    from tuwen.ingest.readers import InputFileError
    from tuwen.store.catalog import RejectedInput  # pandas + pyarrow: loaded only once a command has run
    from tuwen.store.workspace import WorkspaceError

    return InputFileError, MappingError, WorkspaceError, RejectedInput, KeyError, ValueError, FileNotFoundError


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's user-facing errors into one clear message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: the workspace keeps its last complete state; re-run to resume[/]")
            raise typer.Exit(130) from None
        except Exception as error:
            if not isinstance(error, user_errors()):
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            # messages quote user data: "[/x]" in a file name is not markup
            err.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper


def open_workspace(path: Path, create: bool = False) -> Shop:
    """The workspace at ``path`` (an existing one unless ``create``); LanceDB loads here, not at start-up."""
    from tuwen.shop import Shop  # LanceDB + pandas: loaded only by commands that open a workspace

    return Shop(path, create=create)
