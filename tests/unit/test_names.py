"""Names defined once: environment keys, S3 prefixes, metric and service names live in
driftstack/contract/names.py; the CDK app and the runtime code import them instead of retyping them."""

from __future__ import annotations

import ast
from pathlib import Path

from driftstack.contract import names as N
from driftstack.settings import (CanaryEvalSettings, DriftCheckSettings, EnvSettings, LogArchiverSettings,
                                 PredictSettings, RetrainSettings)

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (ROOT / "driftstack", ROOT / "cdk" / "driftstack_cdk", ROOT / "functions")
NAMES = ROOT / "driftstack" / "contract" / "names.py"
# "driftstack" is also the package's and the CLI's name, "Errors" a dashboard widget's title: these two
# are not checked as strings.
NOT_CHECKED = {N.NAMESPACE, N.METRIC_ERRORS}


def _shared_strings() -> dict[str, str]:
    return {value: name for name, value in vars(N).items()
            if name.isupper() and isinstance(value, str) and value not in NOT_CHECKED}


def _retyped(path: Path, shared: dict[str, str]) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r} is names.{shared[node.value]}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in shared
            and id(node) not in docstrings]


def test_no_shared_name_is_retyped():
    shared = _shared_strings()
    found = [hit for root in SCANNED for path in sorted(root.rglob("*.py"))
             if path != NAMES for hit in _retyped(path, shared)]
    assert not found, "import these from driftstack.contract.names instead:\n" + "\n".join(found)


def test_names_module_is_pure():
    imports = [n for n in ast.walk(ast.parse(NAMES.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]


def _env_names(model: type[EnvSettings]) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, EnvSettings):
            out |= _env_names(field.annotation)
        else:
            out.add(model.env_name(name))
    return out


def test_every_settings_variable_is_a_shared_name():
    """Settings fields read names.X (aliases), threshold groups <names.PREFIX><FIELD>: nothing else."""
    keys = {v for k, v in vars(N).items() if k.isupper() and isinstance(v, str)}
    prefixes = (N.DRIFT_PREFIX, N.DECISION_PREFIX, N.CANARY_PREFIX)
    for model in (PredictSettings, LogArchiverSettings, DriftCheckSettings, CanaryEvalSettings, RetrainSettings):
        unknown = {e for e in _env_names(model) if e not in keys and not e.startswith(prefixes)}
        assert not unknown, f"{model.__name__} reads variables not in driftstack.contract.names: {sorted(unknown)}"
