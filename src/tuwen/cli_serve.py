"""``tuwen serve``: the HTTP API and web page for one workspace (see :mod:`tuwen.api`)."""

from __future__ import annotations

from typing import Annotated

import typer

from tuwen.cli import WorkspaceArg, app, friendly, out
from tuwen.workspace import Workspace


@app.command()
@friendly
def serve(
    workspace: WorkspaceArg,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve search, recommendations and predictions over HTTP, with a web page at / and the API docs at /docs."""
    from tuwen.api import serve as run

    Workspace(workspace, create=False)  # a wrong folder fails here, in one line, before uvicorn starts
    out.print(f"tuwen: web page http://{host}:{port}/ · API docs http://{host}:{port}/docs · Ctrl-C stops")
    run(workspace, host, port)
