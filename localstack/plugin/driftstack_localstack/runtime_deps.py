"""Host interpreters for Lambda runtimes and the "runtime-provided" packages they see.

Python: the AWS Python runtime gives every function boto3/botocore (and nothing else). The host runner
mirrors that: for each Python version it uses a directory built once, with
``pip install --target`` of pure-Python wheels (boto3 is pure Python), at
``$DRIFTSTACK_LAMBDA_RUNTIME_DIR/python3.X``. Every python3.X runtime whose interpreter exists on
this host (PATH or pyenv) is prepared by default.

Node.js: the AWS Node.js runtimes (nodejs18.x and later) put the AWS SDK for JavaScript v3 on
NODE_PATH (/var/runtime/node_modules). Here it is ``npm ci`` of localstack/node-runtime/package.json
(+ lock) into ``$DRIFTSTACK_LAMBDA_RUNTIME_DIR/nodejs/node_modules``, one for every nodejs runtime; the
functions run on the host's Node (``nodeNN`` on PATH if present, else ``node``).

Building needs PyPI/npm, so it happens at setup time:

    .venv-localstack/bin/python -m driftstack_localstack.runtime_deps --dir .state/lambda-runtime [python3.12 nodejs20.x ...]

The runner never downloads: a missing directory fails the function with a message naming this command
(the launcher, driftstack/tools/localstack_host.py, runs this command itself when the directory is missing).
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

DEFAULT_RUNTIMES = ("python3.12",)
# The Lambda runtimes this runner can serve, given an interpreter on the host.
PYTHON_RUNTIMES = ("python3.8", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14")
NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x")
NODE_PACKAGE_DIR = Path(__file__).resolve().parents[2] / "node-runtime"  # package.json + package-lock.json
_COMPLETE = ".driftstack-complete"
BUILD_COMMAND = ".venv-localstack/bin/python -m driftstack_localstack.runtime_deps --dir {dir} {runtime}"


class RuntimeSetupError(RuntimeError):
    """The host cannot run a function of this runtime (no interpreter or no runtime-provided packages)."""


def runtime_root() -> Path:
    """Where runtime-provided directories live (the launcher sets DRIFTSTACK_LAMBDA_RUNTIME_DIR)."""
    env = os.environ.get("DRIFTSTACK_LAMBDA_RUNTIME_DIR")
    return Path(env) if env else Path.home() / ".cache" / "driftstack" / "lambda-runtime"


def is_node(runtime: str | None) -> bool:
    return bool(re.fullmatch(r"nodejs\d+\.x", runtime or ""))


def python_version(runtime: str) -> str:
    """'python3.12' -> '3.12'; anything else is not a Python runtime this runner supports."""
    m = re.fullmatch(r"python(3\.\d+)", runtime or "")
    if not m:
        raise RuntimeSetupError(
            f"runtime {runtime!r} is not supported by the driftstack host Lambda runner "
            f"(python3.x and nodejs18.x or later only)"
        )
    return m.group(1)


def node_major(runtime: str) -> int:
    m = re.fullmatch(r"nodejs(\d+)\.x", runtime or "")
    if not m or int(m.group(1)) < 18:
        raise RuntimeSetupError(
            f"runtime {runtime!r} is not supported by the driftstack host Lambda runner "
            f"(python3.x and nodejs18.x or later only: older Node.js runtimes bundle the AWS SDK v2)"
        )
    return int(m.group(1))


@functools.cache
def find_node(major: int) -> tuple[str, int] | None:
    """(path, major version) of the Node.js to run a nodejs<major>.x function: node<major> on PATH, else node."""
    for name in (f"node{major}", "node"):
        if exe := shutil.which(name):
            try:
                out = subprocess.run([exe, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out.returncode == 0 and out.stdout.strip():
                found = int(out.stdout.strip().split(".")[0])
                if found >= 18:
                    return os.path.realpath(exe), found
    return None


def node_for(runtime: str) -> str:
    major = node_major(runtime)
    found = find_node(major)
    if not found:
        raise RuntimeSetupError(
            f"no Node.js (18 or later) found on PATH for Lambda runtime {runtime}; install Node.js "
            f"(e.g. 'apt-get install nodejs', or a 'node{major}' binary on PATH) and re-run `make setup`"
        )
    return found[0]


def interpreter(runtime: str) -> str:
    """The host executable that runs functions of this runtime (clear error when there is none)."""
    return node_for(runtime) if is_node(runtime) else interpreter_for(runtime)


def available_runtimes() -> list[str]:
    """Every Lambda runtime this host has an interpreter for (what setup prepares)."""
    found = [r for r in PYTHON_RUNTIMES if find_interpreter(python_version(r))]
    return found + [r for r in NODE_RUNTIMES if find_node(node_major(r))]


def deps_name(runtime: str) -> str:
    """Directory name of a runtime's provided packages: python3.X, or nodejs (shared by all Node runtimes)."""
    return "nodejs" if is_node(runtime) else runtime


@functools.cache
def find_interpreter(version: str) -> str | None:
    """Real path of a python<version> interpreter: PATH first (pyenv shims resolved), then pyenv versions."""
    candidates = []
    if found := shutil.which(f"python{version}"):
        candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for d in sorted(glob.glob(f"{pyenv_root}/versions/{version}*"), reverse=True):
        candidates.append(f"{d}/bin/python{version}")
    for cand in candidates:
        try:
            out = subprocess.run(
                [cand, "-I", "-S", "-c", "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = out.stdout.split()
        if out.returncode == 0 and len(lines) == 2 and lines[1] == version:
            return lines[0]
    return None


def interpreter_for(runtime: str) -> str:
    version = python_version(runtime)
    exe = find_interpreter(version)
    if not exe:
        raise RuntimeSetupError(
            f"no Python {version} interpreter found on PATH or under pyenv for Lambda runtime {runtime}; "
            f"install it (e.g. 'pyenv install {version}') or declare a runtime whose interpreter exists"
        )
    return exe


def provided_dir(runtime: str, root: Path | None = None) -> Path:
    """The runtime-provided packages directory for a runtime; fails clearly when not built."""
    path = (root or runtime_root()) / deps_name(runtime)
    if not (path / _COMPLETE).exists():
        what = "the AWS SDK for JavaScript v3" if is_node(runtime) else "boto3"
        raise RuntimeSetupError(
            f"runtime-provided packages ({what}) for {runtime} are missing at {path}; build them once with: "
            + BUILD_COMMAND.format(dir=path.parent, runtime=runtime)
            + "  (scripts/setup.sh does this)"
        )
    return path


def _node_stamp() -> str:
    import hashlib

    lock = (NODE_PACKAGE_DIR / "package-lock.json").read_bytes()
    return "aws-sdk-v3 lock sha256 " + hashlib.sha256(lock).hexdigest()[:16]


def build_node(root: Path | None = None, force: bool = False) -> Path:
    """npm ci of localstack/node-runtime (the AWS SDK v3 clients) into root/nodejs/node_modules."""
    root = root or runtime_root()
    target = root / "nodejs"
    stamp = _node_stamp()
    if (target / _COMPLETE).exists() and (target / _COMPLETE).read_text().strip() == stamp and not force:
        return target
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeSetupError("npm not found: install Node.js and npm (apt-get install nodejs npm) for nodejs runtimes")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".nodejs-", dir=root))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NODE_PACKAGE_DIR / name, tmp / name)
        subprocess.run([npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (tmp / _COMPLETE).write_text(stamp + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _pip_target(tmp: Path, version: str, *requirements: str) -> bool:
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(tmp), "--python-version", version, "--implementation", "cp",
         "--only-binary=:all:", *requirements],
    ).returncode == 0


def build(runtime: str, root: Path | None = None, force: bool = False) -> Path:
    """pip-install boto3 (same version as this venv's) for the runtime's Python into root/<runtime>.

    A Python the pinned boto3 no longer supports (3.8) gets the newest boto3 that does, as AWS's
    runtime ships its own. nodejs runtimes: build_node()."""
    if is_node(runtime):
        node_major(runtime)
        return build_node(root, force)
    version = python_version(runtime)
    root = root or runtime_root()
    target = root / runtime
    if (target / _COMPLETE).exists() and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    boto3_version = metadata.version("boto3")
    tmp = Path(tempfile.mkdtemp(prefix=f".{runtime}-", dir=root))
    try:
        if not _pip_target(tmp, version, f"boto3=={boto3_version}", f"botocore=={metadata.version('botocore')}"):
            shutil.rmtree(tmp)
            tmp.mkdir()
            if not _pip_target(tmp, version, "boto3"):
                raise RuntimeSetupError(f"could not install boto3 for {runtime} (Python {version}) from PyPI")
        installed = next(tmp.glob("boto3-*.dist-info")).name.split("-")[1].removesuffix(".dist")
        (tmp / _COMPLETE).write_text(f"boto3=={installed}\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-built directory is never used
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runtimes", nargs="*",
                        help="e.g. python3.12 nodejs20.x (default: every runtime with an interpreter on this host)")
    parser.add_argument("--dir", type=Path, default=None, help="root directory (default $DRIFTSTACK_LAMBDA_RUNTIME_DIR)")
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    args = parser.parse_args(argv)
    root = (args.dir or runtime_root()).resolve()
    for runtime in args.runtimes or available_runtimes():
        path = build(runtime, root, force=args.force)
        try:
            note = interpreter(runtime)
        except RuntimeSetupError:
            note = "WARNING: no interpreter found on this host"
        print(f"{runtime}: {path} ({(path / _COMPLETE).read_text().strip()}; interpreter: {note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
