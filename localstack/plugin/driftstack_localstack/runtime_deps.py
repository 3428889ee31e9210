"""Host interpreters for Lambda Python runtimes and the "runtime-provided" packages they see.

The AWS Python runtime gives every function boto3/botocore (and nothing else). The host runner
mirrors that: for each Python version it uses a directory built once, with
``pip install --target`` of pure-Python wheels (boto3 is pure Python), at
``$DRIFTSTACK_LAMBDA_RUNTIME_DIR/python3.X``. Building needs PyPI, so it happens at setup time:

    .venv-localstack/bin/python -m driftstack_localstack.runtime_deps --dir .state/lambda-runtime [python3.12 ...]

The runner never downloads: a missing directory fails the function with a message naming this command
(the launcher, driftstack/localstack_host.py, runs this command itself when the directory is missing).
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
_COMPLETE = ".driftstack-complete"
BUILD_COMMAND = ".venv-localstack/bin/python -m driftstack_localstack.runtime_deps --dir {dir} {runtime}"


class RuntimeSetupError(RuntimeError):
    """The host cannot run a function of this runtime (no interpreter or no runtime-provided packages)."""


def runtime_root() -> Path:
    """Where runtime-provided directories live (the launcher sets DRIFTSTACK_LAMBDA_RUNTIME_DIR)."""
    env = os.environ.get("DRIFTSTACK_LAMBDA_RUNTIME_DIR")
    return Path(env) if env else Path.home() / ".cache" / "driftstack" / "lambda-runtime"


def python_version(runtime: str) -> str:
    """'python3.12' -> '3.12'; anything else is not a runtime this runner supports."""
    m = re.fullmatch(r"python(3\.\d+)", runtime or "")
    if not m:
        raise RuntimeSetupError(
            f"runtime {runtime!r} is not supported by the driftstack host Lambda runner (Python runtimes only)"
        )
    return m.group(1)


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
    path = (root or runtime_root()) / runtime
    if not (path / _COMPLETE).exists():
        raise RuntimeSetupError(
            f"runtime-provided packages (boto3) for {runtime} are missing at {path}; build them once with: "
            + BUILD_COMMAND.format(dir=path.parent, runtime=runtime)
            + "  (scripts/setup.sh does this)"
        )
    return path


def build(runtime: str, root: Path | None = None, force: bool = False) -> Path:
    """pip-install boto3 (same version as this venv's) for the runtime's Python into root/<runtime>."""
    version = python_version(runtime)
    root = root or runtime_root()
    target = root / runtime
    if (target / _COMPLETE).exists() and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    boto3_version = metadata.version("boto3")
    tmp = Path(tempfile.mkdtemp(prefix=f".{runtime}-", dir=root))
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(tmp), "--python-version", version, "--implementation", "cp",
             "--only-binary=:all:", f"boto3=={boto3_version}", f"botocore=={metadata.version('botocore')}"],
            check=True,
        )
        (tmp / _COMPLETE).write_text(f"boto3=={boto3_version}\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-built directory is never used
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runtimes", nargs="*", default=list(DEFAULT_RUNTIMES), help="e.g. python3.12")
    parser.add_argument("--dir", type=Path, default=None, help="root directory (default $DRIFTSTACK_LAMBDA_RUNTIME_DIR)")
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    args = parser.parse_args(argv)
    root = (args.dir or runtime_root()).resolve()
    for runtime in args.runtimes:
        path = build(runtime, root, force=args.force)
        exe = find_interpreter(python_version(runtime))
        note = exe or "WARNING: no interpreter found on this host"
        print(f"{runtime}: {path} ({(path / _COMPLETE).read_text().strip()}; interpreter: {note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
