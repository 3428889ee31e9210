"""Run LocalStack on this host, without Docker.

    driftstack localstack prepare|start|stop|status|logs [--port 4566]    (driftstack up / down)

LocalStack runs from its own virtualenv (.venv-localstack, Python >= 3.13, made by `make setup`) in
the background, in its own process group, with our plugins (localstack/plugin): Lambda handlers run
as host processes (driftstack-host executor) and DynamoDB is served by moto. Everything it writes
stays under the state directory: pid file, log, LocalStack's filesystem root and its temp files.
`stop` kills the whole process group, Lambda runtime processes included.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # driftstack/tools/localstack_host.py -> the repository
DEFAULT_PORT = 4566
STATE_ROOT = Path(os.environ.get("DRIFTSTACK_STATE_DIR") or REPO / ".state")  # project-wide state (Makefile sets it)
DEFAULT_STATE_DIR = STATE_ROOT / "localstack"
LAMBDA_RUNTIME_DIR = STATE_ROOT / "lambda-runtime"  # boto3 for the Lambda interpreters (setup builds it)
TLS_DIR = STATE_ROOT / "tls"  # the local CA (ca.pem: what HTTPS clients trust) and LocalStack's certificate
CATALOG_CACHE = STATE_ROOT / "localstack-cache"  # LocalStack's service catalog index, shared by all state dirs
LOCALSTACK_VENV = Path(os.environ.get("DRIFTSTACK_LOCALSTACK_VENV", REPO / ".venv-localstack"))
EXECUTOR = "driftstack-host"  # names registered by localstack/plugin/pyproject.toml
DYNAMODB_PROVIDER = "moto"

# Environment of the LocalStack process. OVERRIDE_IN_DOCKER=0 + TMPDIR keep it from writing to
# /var/lib/localstack, /tmp/localstack and /tmp/lambda (it believes it is in a container here).
BASE_ENV = {
    "SKIP_SSL_CERT_DOWNLOAD": "1",
    "DISABLE_EVENTS": "1",  # no analytics calls
    "DNS_ADDRESS": "0",  # no DNS server (would need port 53)
    "OVERRIDE_IN_DOCKER": "0",
    "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR,
    "PROVIDER_OVERRIDE_DYNAMODB": DYNAMODB_PROVIDER,
    "LS_LOG": "info",
}


class LocalStackHostError(RuntimeError):
    """LocalStack cannot be started/used as asked; the message says what to do."""


@dataclass
class Status:
    running: bool
    pid: int | None
    port: int | None
    url: str | None
    healthy: bool
    state_dir: str
    services: dict | None = None


def _paths(state_dir: Path | str | None) -> tuple[Path, Path, Path]:
    state = Path(state_dir or DEFAULT_STATE_DIR).resolve()
    return state, state / "localstack.pid", state / "localstack.log"


def localstack_python() -> Path:
    """The LocalStack venv's interpreter, checked to be Python >= 3.13 with localstack installed."""
    py = LOCALSTACK_VENV / "bin" / "python"
    if not py.exists():
        raise LocalStackHostError(f"LocalStack virtualenv not found at {LOCALSTACK_VENV}: run `make setup` first")
    check = subprocess.run(
        [str(py), "-c", "import sys, localstack, driftstack_localstack; sys.exit(sys.version_info < (3, 13))"],
        capture_output=True, text=True,
    )
    if check.returncode != 0:
        raise LocalStackHostError(
            f"{py} is not a usable LocalStack environment (needs Python >= 3.13 with localstack-core and "
            f"localstack/plugin installed): run `make setup`. Details: {check.stderr.strip()[-300:]}"
        )
    return py


SUPPORTED_PLATFORMS = {("Linux", "x86_64")}  # the Lambda layers are manylinux x86_64 wheels


def check_platform(system: str | None = None, machine: str | None = None) -> None:
    """Host mode runs Lambda code and layers natively: Linux x86_64 only, today."""
    system, machine = system or platform.system(), machine or platform.machine()
    if (system, machine) not in SUPPORTED_PLATFORMS:
        raise LocalStackHostError(
            f"LocalStack host mode runs on Linux x86_64 only (this is {system} {machine}): the Lambda "
            f"functions run natively on this host and their layers are manylinux x86_64 wheels. "
            f"Use the official Docker image instead (localstack/docker-compose.yml; see the README) and "
            f"point driftstack at it with DRIFTSTACK_LOCALSTACK_URL / --endpoint.")


_LIST_RUNTIMES = "from driftstack_localstack import runtime_deps as r; print(' '.join(r.available_runtimes()))"


def lambda_runtimes(py: Path) -> list[str]:
    """Every Lambda runtime this host has an interpreter for (python3.x under pyenv/PATH, nodejs on Node)."""
    out = subprocess.run([str(py), "-c", _LIST_RUNTIMES], capture_output=True, text=True)
    if out.returncode != 0:
        raise LocalStackHostError(f"cannot list the Lambda runtimes of this host: {out.stderr.strip()[-500:]}")
    return out.stdout.split()


def ensure_lambda_runtime(py: Path, runtimes: tuple[str, ...] | None = None) -> None:
    """What the Lambda runtimes provide (boto3 per python3.x, the AWS SDK v3 for nodejs), built once
    (pip/npm) into .state/lambda-runtime for every runtime this host has an interpreter for.

    `make setup` builds it; this only covers a missing directory (e.g. after `make clean`)."""
    runtimes = tuple(runtimes or lambda_runtimes(py))
    from_node = any(r.startswith("nodejs") for r in runtimes)
    missing = [r for r in runtimes
               if r.startswith("python") and not (LAMBDA_RUNTIME_DIR / r / ".driftstack-complete").exists()]
    if from_node and not _node_runtime_current():
        missing.append(next(r for r in runtimes if r.startswith("nodejs")))
    if not missing:
        return
    print(f"building the Lambda runtime packages for {', '.join(missing)} in {LAMBDA_RUNTIME_DIR}",
          file=sys.stderr)
    build = subprocess.run([str(py), "-m", "driftstack_localstack.runtime_deps", "--dir", str(LAMBDA_RUNTIME_DIR),
                            *missing], capture_output=True, text=True)
    if build.returncode != 0:
        raise LocalStackHostError(f"could not build the Lambda runtime packages: {build.stderr.strip()[-1000:]}")


def _node_runtime_current() -> bool:
    """The AWS SDK v3 for the nodejs runtimes is built from the current lock file."""
    import hashlib

    marker = LAMBDA_RUNTIME_DIR / "nodejs" / ".driftstack-complete"
    lock = REPO / "localstack" / "node-runtime" / "package-lock.json"
    if not marker.exists() or not lock.exists():
        return False
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16] in marker.read_text()


_BUILD_CATALOG = """
import os, sys
from localstack.aws import spec
name = spec._get_catalog_filename()
final = os.path.join(sys.argv[1], name)
if not os.path.exists(final):
    tmp = f"{final}.{os.getpid()}.tmp"
    spec.build_service_index_cache(tmp)
    os.replace(tmp, final)  # atomic: concurrent builders never expose a partial file
print(final)
"""


def ensure_service_catalog(py: Path) -> Path:
    """LocalStack's service catalog index, prebuilt once per LocalStack/botocore version.

    Without a prebuilt index every fresh state dir makes LocalStack load all botocore specs to
    build it: ~400 MiB of RSS it never returns. A short-lived process builds it into
    .state/localstack-cache; start() copies it into the state dir's "static libs"."""
    CATALOG_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as fs_root:
        build = subprocess.run([str(py), "-c", _BUILD_CATALOG, str(CATALOG_CACHE)], capture_output=True, text=True,
                               env={**os.environ, "OVERRIDE_IN_DOCKER": "0", "FILESYSTEM_ROOT": fs_root})
    if build.returncode != 0:
        raise LocalStackHostError(f"could not build LocalStack's service catalog: {build.stderr.strip()[-1000:]}")
    return Path(build.stdout.strip().splitlines()[-1])


def prepare() -> None:
    """One-time preparation (setup calls it; start() repeats it cheaply): Lambda runtime packages
    and the service catalog. Needs PyPI/npm only the first time."""
    check_platform()
    py = localstack_python()
    ensure_lambda_runtime(py)
    ensure_service_catalog(py)


def health(url: str, timeout: float = 1.0) -> dict | None:
    """LocalStack's /_localstack/health document, or None when it does not answer like LocalStack."""
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return doc if isinstance(doc, dict) and "services" in doc else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (reaps it if it is our child)."""
    if (proc := _CHILDREN.get(pid)) is not None:
        return proc.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(pid_file: Path) -> dict | None:
    try:
        return json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None


def status(state_dir: Path | str | None = None) -> Status:
    state, pid_file, _ = _paths(state_dir)
    info = _read_pid(pid_file)
    if not info or not _group_alive(info["pid"]):
        return Status(False, None, None, None, False, str(state))
    url = f"http://localhost:{info['port']}"
    doc = health(url)
    return Status(True, info["pid"], info["port"], url, doc is not None, str(state), doc and doc.get("services"))


def wait_healthy(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None, log: Path | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (doc := health(url, timeout=0.5)) is not None:
            return doc
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise LocalStackHostError(f"LocalStack exited with code {proc.returncode} during startup:\n{tail}")
        time.sleep(0.1)
    raise LocalStackHostError(f"LocalStack at {url} not healthy after {timeout:.0f}s (see the log)")


_CHILDREN: dict[int, subprocess.Popen] = {}  # reap what this process started


def start(port: int = DEFAULT_PORT, state_dir: Path | str | None = None, timeout: float = 30.0,
          extra_env: dict[str, str] | None = None) -> Status:
    """Start LocalStack in the background (or reuse ours if already running) and wait until healthy."""
    state, pid_file, log_file = _paths(state_dir)
    current = status(state)
    if current.running:
        if current.port != port:
            raise LocalStackHostError(
                f"LocalStack from {state} already runs on port {current.port}; stop it first "
                f"(`driftstack localstack stop`)")
        wait_healthy(current.url, timeout)
        return status(state)
    if not _port_free(port):
        what = "another LocalStack" if health(f"http://localhost:{port}") else "another process"
        raise LocalStackHostError(
            f"port {port} is already in use by {what} (not started from {state}); "
            f"stop it or choose another port with --port")
    check_platform()
    py = localstack_python()
    ensure_lambda_runtime(py)
    # LocalStack keeps no state across restarts (PERSISTENCE is off): drop the previous run's
    # unzipped code/layers and runtime working dirs.
    for sub in ("tmp", "lambda"):
        shutil.rmtree(state / sub, ignore_errors=True)
    for sub in ("fs", "tmp"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    catalog = ensure_service_catalog(py)
    static_libs = state / "fs" / "usr" / "lib" / "localstack"
    static_libs.mkdir(parents=True, exist_ok=True)
    if not (static_libs / catalog.name).exists():
        shutil.copyfile(catalog, static_libs / catalog.name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(BASE_ENV)
    env.update({
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "CUSTOM_SSL_CERT_PATH": str(_server_certificate(state)),
        "FILESYSTEM_ROOT": str(state / "fs"),
        "TMPDIR": str(state / "tmp"),  # Lambda code/layer unzip (tempfile.gettempdir()/lambda)
        "DRIFTSTACK_LOCALSTACK_STATE_DIR": str(state),  # the Lambda runner's working files
        "DRIFTSTACK_LAMBDA_RUNTIME_DIR": str(LAMBDA_RUNTIME_DIR),
        **(extra_env or {}),
    })
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [str(py), "-m", "localstack.runtime.main"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=state, start_new_session=True,  # own process group: stop kills all of it
        )
    _CHILDREN[proc.pid] = proc
    pid_file.write_text(json.dumps({"pid": proc.pid, "port": port}))
    try:
        wait_healthy(f"http://localhost:{port}", timeout, proc, log_file)
    except LocalStackHostError:
        stop(state)
        raise
    return status(state)


def _server_certificate(state: Path) -> Path:
    """The gateway's certificate, signed by the local CA: the port speaks HTTP and HTTPS, and HTTPS
    verifies against TLS_DIR/ca.pem. A copy per state dir: LocalStack splits it into .key/.crt
    files beside it, which two LocalStacks must not write at the same time."""
    from driftstack.tools import local_ca

    mine = state / "tls" / local_ca.SERVER_FILE
    mine.parent.mkdir(exist_ok=True)
    shutil.copyfile(local_ca.ensure(TLS_DIR).server, mine)
    mine.chmod(0o600)  # it holds the key
    return mine


def stop(state_dir: Path | str | None = None, timeout: float = 3.0) -> bool:
    """Terminate LocalStack and every process of its group (Lambda runtimes). True if something ran.

    LocalStack gets `timeout` seconds to shut down (it keeps no state we need: PERSISTENCE is off).
    Its shutdown can hang on the Lambda log shipper retrying CloudWatch calls against the gateway
    that is already closing, so after that the group is killed."""
    state, pid_file, _ = _paths(state_dir)
    info = _read_pid(pid_file)
    if not info:
        return False
    pgid = info["pid"]
    was_running = _group_alive(pgid)
    if was_running:
        # LocalStack first, so it shuts its services (and Lambda environments) down in order;
        # then whatever is left of the group.
        try:
            os.kill(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _pid_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if _group_alive(pgid):
                os.killpg(pgid, sig)
                time.sleep(0.2)
    if (proc := _CHILDREN.pop(pgid, None)) is not None:
        proc.wait()
    pid_file.unlink(missing_ok=True)
    return was_running


def logs(state_dir: Path | str | None = None, lines: int = 100) -> str:
    _, _, log_file = _paths(state_dir)
    if not log_file.exists():
        return ""
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
