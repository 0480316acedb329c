"""``tuwen serve``: the HTTP API and web page for one workspace (see :mod:`tuwen.serve.app`)."""

from __future__ import annotations

from typing import Annotated

import typer

from tuwen.cli.common import WorkspaceArg, friendly, out


@friendly
def serve(
    workspace: WorkspaceArg,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface: needs an API key)."
                                      )] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[str | None, typer.Option(
        envvar="TUWEN_API_KEY", show_envvar=True,
        help="Key the shopper routes (recommend, profile, forget) need in the X-API-Key header; required when "
             "--host is not loopback.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="A Host name clients use to reach the server (repeatable); loopback names and --host are always "
             "allowed, any other Host is refused (DNS rebinding).")] = None,
) -> None:
    """Serve search, recommendations and predictions over HTTP, with a web page at / and the API docs at /docs."""
    from tuwen.serve.app import check_access
    from tuwen.serve.app import serve as run
    from tuwen.shop import Shop

    check_access(host, api_key)  # refused here, in one line, before anything loads
    Shop(workspace, create=False)  # a wrong folder fails here, in one line, before uvicorn starts
    shown = f"[{host}]" if ":" in host else host
    out.print(f"tuwen: web page http://{shown}:{port}/ · API docs http://{shown}:{port}/docs · Ctrl-C stops"
              + (" · shopper routes need the API key" if api_key else ""))
    run(workspace, host, port, api_key=api_key, allowed_hosts=allowed_host or [])


def register(app: typer.Typer) -> None:
    """Add these commands to the main app; ``tuwen.cli.main`` calls it once (importing this module adds nothing)."""
    app.command()(serve)
