"""`driftstack console`: the local web console over the deployed stack (driftstack/tools/console)."""

from __future__ import annotations

import click

from driftstack.tools.cli.errors import Failed, NotReady
from driftstack.tools.cli.root import State, cli, pass_state


def _api_docs(state: State):
    """A fetcher of the API's docs page (Swagger UI, served by the prediction Lambda, with the key);
    None when the API cannot be read."""
    try:
        client = state.api()
    except Exception:  # noqa: BLE001 - a missing link must not keep the console from starting
        return None
    return lambda: client.call("GET", "/docs")


@cli.command("console")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port on 127.0.0.1 (default 8765; 0 picks a free one).")
@click.option("--mlflow-url", default=None, metavar="URL",
              help="The MLflow UI the pages link to (default http://127.0.0.1:5000, `driftstack mlflow`).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@pass_state
def console_cmd(state: State, port: int | None, mlflow_url: str | None, no_browser: bool) -> None:
    """Web console on 127.0.0.1: retraining graph, drift, models.

    Reads the deployed stack (where the global options point) and serves everything locally; stop
    it with Ctrl-C."""
    from driftstack.tools.console.app import (
        DEFAULT_MLFLOW_URL,
        DEFAULT_PORT,
        AssetsMissing,
        Links,
        create_app,
        free_port,
        serve,
    )
    from driftstack.tools.console.reader import StackReader

    reader = StackReader(state.target, state.outputs())  # not deployed / not reachable: exit 3 here
    reader.state_machine()  # the stack's resources answer before a page is served
    try:
        app = create_app(reader, Links(mlflow_url or DEFAULT_MLFLOW_URL, _api_docs(state)), state.stack)
    except AssetsMissing as exc:
        raise NotReady(str(exc)) from exc
    try:
        port = free_port(DEFAULT_PORT if port is None else port)
    except OSError as exc:
        raise Failed(f"cannot listen on 127.0.0.1:{port or DEFAULT_PORT} ({exc.strerror}) — choose another with "
                     "--port N, or --port 0 for any free one") from exc

    def ready(url: str) -> None:
        click.echo(f"driftstack console: {url}  (reading {state.stack} on {state.target.describe()}; Ctrl-C stops)")
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    serve(app, port, on_ready=ready)
