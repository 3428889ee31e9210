"""The layers the README describes, enforced: `.importlinter` (run here through import-linter's own
entry point) plus what import-linter cannot see — environment reads in pure code, what the Lambda
handlers import, their size, and what the Lambda layer ships."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "driftstack"
PURE = ("contract", "domain")
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))
HANDLER_IMPORTS = ("driftstack.settings", "driftstack.usecases", "driftstack.contract", "driftstack.adapters.aws")
MAX_HANDLER_LINES = 90  # "thin": Powertools, settings, one use-case call


def _modules(*subpackages: str) -> list[Path]:
    return sorted(p for sub in subpackages for p in (PACKAGE / sub).rglob("*.py"))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_import_layers_hold():
    from importlinter.cli import lint_imports  # a dev requirement: missing, this test fails rather than skips

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True)
    report = out.getvalue()
    assert code == 0, report[report.find("Broken contracts"):] or report


def _environment_reads(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "getenv", "putenv"):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os" \
                and any(a.name in ("environ", "getenv") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_pure_layers_never_read_the_environment():
    found = [f"{_rel(p)}:{n}" for p in _modules(*PURE) for n in _environment_reads(ast.parse(p.read_text()))]
    assert not found, f"the contract and the domain take values as arguments, not from os.environ: {found}"


def _driftstack_imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(n, m) for n, m in out if m.split(".")[0] in ("driftstack", "spark_jobs")]


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda p: p.parent.name)
def test_handlers_are_thin(handler: Path):
    tree = ast.parse(handler.read_text())
    wrong = [f"line {n}: {m}" for n, m in _driftstack_imports(tree) if not m.startswith(HANDLER_IMPORTS)]
    assert not wrong, (f"{_rel(handler)} imports below the use cases — handlers call one use case with their "
                       f"settings ({', '.join(HANDLER_IMPORTS)}): {wrong}")
    lines = len(handler.read_text().splitlines())
    assert lines <= MAX_HANDLER_LINES, f"{_rel(handler)} has {lines} lines; move logic into driftstack/usecases"


def test_the_lambda_layer_ships_no_tools_and_no_training_data():
    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "layers" / "build.py")
    build = importlib.util.module_from_spec(spec)
    sys.modules["layer_build"] = build
    spec.loader.exec_module(build)
    shipped = {p.relative_to(PACKAGE).parts[0] for p in build._package_files()}
    assert not shipped & {"tools", "data"}, shipped
    assert {"contract", "domain", "adapters", "usecases"} <= shipped, shipped
