"""`driftstack console`: a local web app over the deployed stack (what the AWS console shows for it).

graph.py turns the state machine's definition and an execution's history into a graph and state
statuses, reader.py reads the stack through boto3 (one :class:`~driftstack.tools.aws_target.Target`),
app.py serves the pages (Starlette + Jinja2) and their JSON on 127.0.0.1. Front-end libraries come
from npm at setup (package.json here; node_modules is served as /assets) — nothing from a CDN.
"""

DEFAULT_PORT = 8765                          # `driftstack console` (the demo's last lines name it)
DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"  # `driftstack mlflow`
