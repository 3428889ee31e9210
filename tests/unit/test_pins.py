"""Pins that match what runs.

The Lambda deps layer (layers/requirements.txt, installed with --no-deps) must hold the versions the
unit tests ran in the project venv, and the whole closure of the runtime requirements in pyproject.toml;
pyspark 4.3 needs pandas < 3.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LAYER_REQUIREMENTS = ROOT / "layers" / "requirements.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Runtime requirements only the operator tools use (driftstack/tools/, outside the layer).
TOOLS_ONLY = {"click", "rich", "requests"}
# The Lambda python runtime provides the AWS SDK; the layer leaves it (and what it pulls in) out.
LAMBDA_RUNTIME_PROVIDES = {"boto3", "botocore"}
# Markers are evaluated for the layer's interpreter (python3.12 on Linux x86_64), not the venv's.
LAYER_MARKER_ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.0",
                    "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                    "os_name": "posix", "implementation_name": "cpython",
                    "platform_python_implementation": "CPython"}


def layer_pins() -> dict[str, str]:
    pins = {}
    for line in LAYER_REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{LAYER_REQUIREMENTS.name}: '{line}' is not pinned with =="
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**LAYER_MARKER_ENV, "extra": e}) for e in extras | {""})


def runtime_closure() -> dict[str, str]:
    """Every package the layer's runtime requirements need, as {package: the requirement that pulls it in}."""
    needed: dict[str, str] = {}
    todo = [(Requirement(r), "pyproject.toml") for r in PYPROJECT["project"]["dependencies"]]
    todo = [(r, via) for r, via in todo if canonicalize_name(r.name) not in TOOLS_ONLY]
    while todo:
        req, via = todo.pop()
        name = canonicalize_name(req.name)
        if name in LAMBDA_RUNTIME_PROVIDES or (name in needed and not req.extras):
            continue
        needed.setdefault(name, via)
        todo += [(sub, name) for sub in map(Requirement, metadata.requires(req.name) or [])
                 if _applies(sub, set(req.extras))]
    return needed


def test_layer_pins_equal_the_venv():
    mismatches = []
    for name, pinned in layer_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            mismatches.append(f"  {name}: layer {pinned}, venv {installed}")
    assert not mismatches, (
        "layers/requirements.txt differs from the project venv, so the Lambda layer would not run what "
        "the unit tests ran:\n" + "\n".join(mismatches)
        + "\nSet the pins to the versions you tested, then `make setup` (it installs the venv with the "
          "layer pins as constraints) and `python layers/build.py`.")


def test_layer_holds_the_runtime_closure():
    pins = layer_pins()
    missing = [f"  {name} (needed by {via})" for name, via in sorted(runtime_closure().items()) if name not in pins]
    assert not missing, (
        "the layer is installed with --no-deps, so layers/requirements.txt must list every package the "
        "runtime requirements need; missing:\n" + "\n".join(missing)
        + "\nPin each at the venv's version. (Packages only the CLI uses belong in TOOLS_ONLY here.)")


def _layer_build_module():
    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "layers" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lambda_code() -> list[Path]:
    """What runs in a Lambda: the shared layer's part of the package, and the handlers."""
    outside = _layer_build_module().OUTSIDE_LAYER
    package = [p for p in (ROOT / "driftstack").rglob("*.py") if p.relative_to(ROOT / "driftstack").parts[0] not in outside]
    return package + sorted((ROOT / "functions").rglob("*.py"))


def _imported_top_level_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"driftstack", "__future__"}


def test_every_package_the_lambda_code_imports_is_a_runtime_requirement():
    declared = set(runtime_closure()) | LAMBDA_RUNTIME_PROVIDES
    distributions = metadata.packages_distributions()
    undeclared = []
    for path in lambda_code():
        for module in sorted(_imported_top_level_modules(path)):
            if (path.parent / f"{module}.py").exists():
                continue  # a handler's own module, beside it
            names = {canonicalize_name(d) for d in distributions.get(module, [module])}
            if not names & declared:
                undeclared.append(f"  {path.relative_to(ROOT)} imports {module} ({', '.join(sorted(names))})")
    assert not undeclared, ("Lambda code imports packages that are neither runtime requirements in pyproject.toml "
                            "nor pinned in the layer:\n" + "\n".join(undeclared))


def test_layer_pins_only_what_the_runtime_needs():
    unneeded = sorted(set(layer_pins()) - set(runtime_closure()))
    assert not unneeded, f"layers/requirements.txt pins packages no runtime requirement needs: {unneeded}"


def _extra(name: str) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r
            for r in map(Requirement, PYPROJECT["project"]["optional-dependencies"][name])}


def test_pandas_below_3_where_pyspark_runs():
    spark = _extra("spark")
    assert "pyspark" in spark
    assert not spark["pandas"].specifier.contains("3.0.0"), "pyspark 4.3 does not support pandas 3: pin pandas<3"
    assert Version(metadata.version("pandas")) < Version("3"), "the venv has pandas 3: run `make setup`"


def test_cdk_nag_is_v3():
    spec = _extra("cdk")["cdk-nag"].specifier
    assert spec.contains("3.0.0") and not spec.contains("2.99.0") and not spec.contains("4.0.0")
