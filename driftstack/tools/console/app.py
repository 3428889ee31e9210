"""The console's web app: server-rendered pages (Jinja2) that fetch their live parts from JSON
endpoints, the front-end libraries from node_modules (installed by setup from package.json), and
the drift reports from S3 through the console. Bound to 127.0.0.1 by :func:`serve`: nothing is
exposed beyond this machine and no page loads anything from the internet."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from driftstack.tools.console import DEFAULT_MLFLOW_URL, DEFAULT_PORT  # noqa: F401 - the CLI reads them here
from driftstack.tools.console.reader import NotFound, StackReader, mlflow_links

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "node_modules"
PAGES = (("retraining", "Retraining"), ("drift", "Drift"), ("models", "Models"), ("operations", "Operations"))


@dataclass(frozen=True)
class Links:
    """Where the console points beyond itself: the MLflow UI (`driftstack mlflow`), and the API's docs
    page. The API wants its key on every method (a browser has none), so the console fetches that page
    with the key (``api_docs`` returns its status and HTML) and serves it at /api-docs."""

    mlflow: str = DEFAULT_MLFLOW_URL
    api_docs: Callable[[], tuple[int, str]] | None = None


class AssetsMissing(RuntimeError):
    """node_modules of the console is not installed (scripts/setup.sh installs it)."""


def _json(data, status: int = 200) -> JSONResponse:
    import json

    return JSONResponse(json.loads(json.dumps(data, default=str)), status_code=status)


async def not_found(request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=404)


def create_app(reader: StackReader, links: Links = Links(), stack: str = "") -> Starlette:
    if not (ASSETS / "cytoscape").is_dir():
        raise AssetsMissing(f"the console's front-end packages are not installed ({ASSETS}) — run `make setup` "
                            "(or `npm install` in driftstack/tools/console)")
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def page(name: str):
        async def render(request: Request):
            return templates.TemplateResponse(request, f"{name}.html", {
                "page": name, "pages": PAGES, "links": links, "stack": stack, "target": reader.target.describe()})
        return render

    async def state_machine(request: Request):
        return _json(reader.state_machine())

    async def executions(request: Request):
        return _json(reader.executions())

    async def execution(request: Request):
        return _json(reader.execution(request.path_params["name"]))

    async def approval(request: Request):
        from driftstack.tools.operations import ApprovalError

        body = await request.json()
        decision = body.get("decision")
        if decision not in ("approve", "reject"):
            return _json({"error": "decision must be approve or reject"}, 400)
        if decision == "reject" and not str(body.get("reason") or "").strip():
            return _json({"error": "a rejection needs a reason"}, 400)
        try:
            answer = reader.answer_approval(request.path_params["run_id"], decision == "approve",
                                            str(body.get("reason") or ""), by=f"{getpass.getuser()} (console)")
        except ApprovalError as exc:
            return _json({"error": str(exc)}, 409)
        return _json(answer)

    async def drift(request: Request):
        return _json({"checks": reader.drift_checks(int(request.query_params.get("limit", 50))),
                      "thresholds": reader.thresholds()})

    async def report(request: Request):
        return HTMLResponse(reader.report(request.path_params["check_id"]))

    async def models(request: Request):
        return _json(reader.models())

    async def decision(request: Request):
        record = reader.decision(request.path_params["run_id"])
        return _json({"record": record, "mlflow": mlflow_links(record, links.mlflow)})

    async def metrics(request: Request):
        return _json(reader.metrics(int(request.query_params.get("minutes", 180))))

    async def alarms(request: Request):
        return _json(reader.alarms())

    async def api_docs(request: Request):
        from starlette.concurrency import run_in_threadpool

        if links.api_docs is None:
            return HTMLResponse("the API cannot be read: is the stack deployed?", status_code=404)
        status, page = await run_in_threadpool(links.api_docs)
        return HTMLResponse(page if isinstance(page, str) else str(page), status_code=status)

    async def home(request: Request):
        return RedirectResponse("/retraining")

    routes = [Route("/", home), *(Route(f"/{name}", page(name)) for name, _ in PAGES),
              Route("/api/state-machine", state_machine), Route("/api/executions", executions),
              Route("/api/executions/{name}", execution),
              Route("/api/approvals/{run_id}", approval, methods=["POST"]),
              Route("/api/drift", drift), Route("/drift/report/{check_id}", report),
              Route("/api/models", models), Route("/api/decisions/{run_id}", decision),
              Route("/api/metrics", metrics), Route("/api/alarms", alarms), Route("/api-docs", api_docs),
              Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
              Mount("/assets", StaticFiles(directory=str(ASSETS)), name="assets")]
    return Starlette(routes=routes, exception_handlers={NotFound: not_found})


def free_port(port: int = 0) -> int:
    """``port`` when it can be bound on 127.0.0.1 (0: any free one); OSError when it is taken."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]


def serve(app: Starlette, port: int, on_ready=None) -> None:
    """Run on 127.0.0.1:``port`` until interrupted; ``on_ready(url)`` once it listens."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets=None):
            await original(sockets)
            if server.started:
                on_ready(f"http://127.0.0.1:{port}")
        server.startup = startup
    server.run()
