"""Least privilege and safe defaults: cdk-nag (AwsSolutions) over the synthesized stack, the safe
defaults asserted on the template, and no secret in the repository."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cdk"))

cdk = pytest.importorskip("aws_cdk")
pytest.importorskip("cdk_nag")


@pytest.fixture(scope="module")
def synth(cdk_stack):
    """The whole stack, synthesized in-process with the AwsSolutions pack as a validation plugin."""
    from driftstack_cdk import nag

    app, stack = cdk_stack()
    out = Path(app.outdir)
    nag.add_checks(app)
    error = None
    try:
        app.synth()
    except Exception as exc:  # noqa: BLE001 - the report says which rules failed
        error = exc
    report = json.loads((out / "validation-report.json").read_text()) if (out / "validation-report.json").exists() \
        else {"pluginReports": []}
    template = json.loads((out / "T.template.json").read_text()) if (out / "T.template.json").exists() else None
    return {"error": error, "report": report, "template": template, "stack": stack}


def _violations(report: dict) -> list[str]:
    return [f"{v['severity']} {v['ruleName']}: {c['constructPath']}"
            for p in report["pluginReports"] for v in p.get("violations", [])
            for c in v["violatingConstructs"]]


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(synth):
    found = _violations(synth["report"])
    assert synth["error"] is None and not found, "cdk-nag findings:\n" + "\n".join(found) + f"\n{synth['error']}"
    assert synth["report"]["pluginReports"], "the AwsSolutions pack did not run"
    assert synth["template"] is not None


def test_every_acknowledgment_has_a_specific_reason():
    from driftstack_cdk import nag

    for key, reason in nag.REASONS.items():
        assert len(reason) > 60, f"{key}: reason too thin: {reason!r}"
    # All acknowledgments live in nag.py: no other CDK module acknowledges a rule.
    for path in (ROOT / "cdk" / "driftstack_cdk").glob("*.py"):
        if path.name != "nag.py":
            text = path.read_text()
            assert "acknowledge(" not in text.replace("nag.acknowledge(", "") and "NagSuppressions" not in text, path


def _resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_buckets_encrypted_private_tls_only(synth):
    t = synth["template"]
    buckets = _resources(t, "AWS::S3::Bucket")
    assert buckets
    for name, b in buckets.items():
        props = b["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}, name
        policies = [p for p in _resources(t, "AWS::S3::BucketPolicy").values()
                    if p["Properties"]["Bucket"] == {"Ref": name}]
        denies = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        assert denies, f"{name} accepts plain HTTP"


def test_tables_have_point_in_time_recovery(synth):
    tables = _resources(synth["template"], "AWS::DynamoDB::Table")
    assert len(tables) >= 2      # models (pointers, rollouts) and history; the request log is a queue
    for name, table in tables.items():
        spec = table["Properties"].get("PointInTimeRecoverySpecification", {})
        assert spec.get("PointInTimeRecoveryEnabled") is True, name


def test_queues_and_topics_tls_only(synth):
    t = synth["template"]
    for kind, policy_kind, ref_key in (("AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues"),
                                       ("AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics")):
        policies = list(_resources(t, policy_kind).values())
        for name in _resources(t, kind):
            covering = [p for p in policies if {"Ref": name} in p["Properties"][ref_key]]
            stmts = [s for p in covering for s in p["Properties"]["PolicyDocument"]["Statement"]]
            assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))
                       for s in stmts), f"{name} accepts plain HTTP"


def test_every_api_method_requires_the_api_key(synth):
    methods = _resources(synth["template"], "AWS::ApiGateway::Method")
    assert methods
    for name, m in methods.items():
        if m["Properties"]["HttpMethod"] == "OPTIONS":
            continue
        assert m["Properties"].get("ApiKeyRequired") is True, name
    assert _resources(synth["template"], "AWS::ApiGateway::UsagePlan")


def _statements(template: dict, role_hint: str) -> list[dict]:
    out = []
    for name, pol in _resources(template, "AWS::IAM::Policy").items():
        roles = json.dumps(pol["Properties"].get("Roles", []))
        if role_hint in roles:
            out.extend(pol["Properties"]["PolicyDocument"]["Statement"])
    return out


def _actions(stmts: list[dict]) -> set[str]:
    acts: set[str] = set()
    for s in stmts:
        acts.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return acts


def test_each_function_role_grants_only_what_it_uses(synth):
    t = synth["template"]
    roles = {k for k in _resources(t, "AWS::IAM::Role")}
    predict = _statements(t, next(r for r in roles if r.startswith("ServingPredict")))
    acts = _actions(predict)
    # The predict function reads the pointer and artifacts, writes the log/archives, sends to the fallback.
    assert not any(a.startswith(("s3:Delete", "dynamodb:Delete", "dynamodb:Scan", "states:", "sns:", "iam:"))
                   for a in acts), sorted(acts)
    assert "dynamodb:PutItem" not in _actions([s for s in predict if "StorageModels" in json.dumps(s["Resource"])])
    for s in predict:
        if any(a.startswith("s3:GetObject") for a in _actions([s])):
            assert "/models/*" in json.dumps(s["Resource"]), s  # reads only model artifacts
    drift_statements = _statements(t, next(r for r in roles if r.startswith("MonitoringDriftCheck")))
    drift = _actions(drift_statements)
    assert {"states:StartExecution", "states:ListExecutions", "sqs:ReceiveMessage", "sqs:DeleteMessage"} <= drift
    assert not any(a.startswith(("states:Describe", "dynamodb:Delete")) for a in drift), sorted(drift)
    # it drains the log before it reads: the only objects it may delete are the log's spilled messages
    for s in drift_statements:
        if any(a.startswith("s3:Delete") for a in _actions([s])):
            assert json.dumps(s["Resource"]).endswith('"/log-spill/*"]]}'), s
    for r in roles:
        if r.startswith("Retraining") and "Fn" in r:
            acts = _actions(_statements(t, r))
            assert not any(a.startswith(("s3:Delete", "dynamodb:Delete", "dynamodb:Scan")) for a in acts), (r, acts)
            if not r.startswith("RetrainingPromoteFn"):
                assert "dynamodb:PutItem" not in _actions(
                    [s for s in _statements(t, r) if "StorageModels" in json.dumps(s["Resource"])]), r
    for name, pol in _resources(t, "AWS::IAM::Policy").items():
        for s in pol["Properties"]["PolicyDocument"]["Statement"]:
            acts = _actions([s])
            assert not any(a == "*" or a.endswith(":*") for a in acts), (name, acts)


# ------------------------------------------------------------------ secrets

AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b")
SECRET_ASSIGN = re.compile(
    r"""(?i)(aws_secret_access_key|secret_access_key|aws_session_token|password|api_key|secret)\s*[=:]\s*["']([^"'\s]{8,})["']""")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----")
DUMMIES = {"test", "testing", "localstack", "dummy"}


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def test_no_secret_in_the_repository():
    files = _tracked_files()
    assert len(files) > 50
    problems = []
    for path in files:
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for m in AWS_KEY_ID.finditer(text):
            problems.append(f"{path.relative_to(ROOT)}: AWS key id {m.group(0)[:8]}…")
        for m in PRIVATE_KEY.finditer(text):
            problems.append(f"{path.relative_to(ROOT)}: private key block")
        for m in SECRET_ASSIGN.finditer(text):
            value = m.group(2)
            if value.lower() in DUMMIES or value.startswith(("$", "{", "<", "os.environ")) or "environ" in value:
                continue
            problems.append(f"{path.relative_to(ROOT)}: {m.group(1)} = {value[:4]}…")
    assert not problems, "possible secrets:\n" + "\n".join(problems)


def test_secret_scanner_catches_a_planted_key():
    # Assembled at run time so this file itself does not contain a matching line.
    planted = 'aws_secret_access_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" + '"\nkey AKIA' + "ABCDEFGHIJKLMNOP"
    assert AWS_KEY_ID.search(planted) and SECRET_ASSIGN.search(planted)
