#!/usr/bin/env python3
"""Build the Lambda layers the CDK app deploys as local assets (no Docker bundling).

    python layers/build.py            # builds what changed, skips the rest
    python layers/build.py --force    # rebuild both

build/layers/deps/python/     numpy, onnxruntime, pydantic, aws-lambda-powertools (+ X-Ray SDK for
                              Tracer) for the python3.12 runtime: pip --target with
                              --platform manylinux2014_x86_64 (+ manylinux_2_28) --python-version 3.12
                              --only-binary=:all:, so the same wheels run on AWS (Amazon Linux 2023) and
                              in the LocalStack host runner (host python3.12, glibc >= 2.28).
build/layers/shared/python/driftstack/   the driftstack package without its tools/ and data/ (OUTSIDE_LAYER).

Versions are pinned in layers/requirements.txt and installed with --no-deps: the list is complete
on purpose, so boto3/botocore (the runtime provides them) and heavy unused dependencies stay out.
Each layer has a stamp (sha256 of its inputs); an unchanged input set is not rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "layers"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
PACKAGE = ROOT / "driftstack"
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
STAMP = ".build-stamp.json"
_SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache"}
# What no Lambda imports stays out of the layer: the operator tools (CLI, demo, deploy, LocalStack
# launcher, traffic) and the training-data preparation (pyarrow, which the layer lacks).
OUTSIDE_LAYER = ("tools", "data")


def _say(message: str) -> None:
    """Progress on stderr: stdout stays free for a caller's own output (e.g. `demo --json`)."""
    print(message, file=sys.stderr, flush=True)


def _hash_files(files: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted(files):
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _package_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*") if p.is_file() and not _SKIP & set(p.parts)
            and p.suffix not in (".pyc", ".pyo") and p.relative_to(PACKAGE).parts[0] not in OUTSIDE_LAYER]


def _up_to_date(layer: Path, digest: str) -> bool:
    stamp = layer / STAMP
    return stamp.exists() and json.loads(stamp.read_text()).get("inputs") == digest


def _finish(tmp: Path, layer: Path, digest: str, started: float) -> None:
    (tmp / STAMP).write_text(json.dumps({"inputs": digest, "built_at": time.time(),
                                         "seconds": round(time.monotonic() - started, 1)}))
    if layer.exists():
        shutil.rmtree(layer)
    tmp.rename(layer)  # a half-built layer never sits at the final path


def build_deps(force: bool = False) -> Path:
    layer = OUT / "deps"
    digest = _hash_files([REQUIREMENTS], extra=f"{PYTHON_VERSION}|{PLATFORMS}")
    if not force and _up_to_date(layer, digest):
        _say(f"deps layer up to date ({layer})")
        return layer
    started = time.monotonic()
    tmp = OUT / "deps.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    target = tmp / "python"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(target), "--python-version", PYTHON_VERSION, "--implementation", "cp",
           "--only-binary=:all:", "--no-deps", "-r", str(REQUIREMENTS)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    _say(f"building deps layer for python{PYTHON_VERSION} ({', '.join(PLATFORMS)}) ...")
    subprocess.run(cmd, check=True)
    # Trim what a Lambda never uses: bytecode caches, tests, type stubs, onnxruntime's tools.
    for pattern in ("**/__pycache__", "**/tests", "numpy/_core/tests", "onnxruntime/tools",
                    "onnxruntime/quantization", "onnxruntime/transformers", "**/*-stubs"):
        for p in target.glob(pattern):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    _finish(tmp, layer, digest, started)
    _say(f"deps layer built in {time.monotonic() - started:.0f}s: {_size_mb(layer):.0f} MB")
    return layer


def build_shared(force: bool = False) -> Path:
    layer = OUT / "shared"
    files = _package_files()
    digest = _hash_files(files)
    if not force and _up_to_date(layer, digest):
        _say(f"shared layer up to date ({layer})")
        return layer
    started = time.monotonic()
    tmp = OUT / "shared.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for f in files:
        dest = tmp / "python" / f.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    _finish(tmp, layer, digest, started)
    _say(f"shared layer built: {len(files)} files, {_size_mb(layer):.1f} MB")
    return layer


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even when inputs are unchanged")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        build_deps(args.force)
    except subprocess.CalledProcessError as exc:
        print(f"error: pip failed ({exc.returncode}); is PyPI reachable and does every pin in "
              f"{REQUIREMENTS.relative_to(ROOT)} have a cp{PYTHON_VERSION.replace('.', '')} "
              f"{'/'.join(PLATFORMS)} wheel?", file=sys.stderr)
        return 1
    build_shared(args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
