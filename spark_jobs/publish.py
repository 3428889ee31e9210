"""Publish a verified model: S3 (content-addressed), MLflow (run + registered version + alias),
optionally the DynamoDB champion pointer. No Spark here: callable from any Python process.

Order matters: the MLflow registration gives the version number that goes into metadata.json,
and metadata.json is uploaded last, so a prefix with a metadata document is a complete artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from driftstack.adapters import registry
from driftstack.settings.mlflow_store import project_store

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXPERIMENT = "driftstack"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_client():
    """S3 client for AWS or LocalStack: endpoint from AWS_ENDPOINT_URL(_S3), path-style addressing."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint,
                        region_name=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


@dataclass
class MlflowSettings:
    enabled: bool = True
    # flag > MLFLOW_TRACKING_URI > the project's store (<state dir>/mlflow, driftstack.settings.mlflow_store)
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    artifact_location: str | None = None   # flag > DRIFTSTACK_MLFLOW_ARTIFACTS > the project store's artifacts

    def resolved_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or project_store().tracking_uri

    def resolved_artifacts(self) -> str:
        return self.artifact_location or os.environ.get("DRIFTSTACK_MLFLOW_ARTIFACTS") or str(project_store().artifacts)


@dataclass
class PublishRequest:
    model_name: str
    model_bytes: bytes
    metadata: dict            # everything but sha256/version/prefix, filled in here
    profile: dict
    bucket: str
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    create_bucket: bool = False
    models_table: str | None = None  # set -> write the champion pointer if none exists


def _ensure_bucket(s3, bucket: str, create: bool) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if not create:
            raise RuntimeError(f"S3 bucket {bucket!r} is not reachable ({exc.response['Error'].get('Code')}); "
                               f"deploy the stack or pass --create-bucket") from exc
        s3.create_bucket(Bucket=bucket)


def log_mlflow(settings: MlflowSettings, req: PublishRequest, sha: str, onnx_model) -> dict:
    """Run + params + metrics + ONNX model, registered; alias 'champion' on the first version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = settings.resolved_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(settings.experiment)
    if exp is None:
        loc = settings.resolved_artifacts()
        if "://" not in loc:
            Path(loc).mkdir(parents=True, exist_ok=True)
            loc = Path(loc).as_uri()
        mlflow.create_experiment(settings.experiment, artifact_location=loc)
    mlflow.set_experiment(settings.experiment)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with mlflow.start_run(run_name=f"{req.model_name}-{sha[:8]}") as run:
        mlflow.log_params({k: v for k, v in req.params.items()})
        mlflow.log_metrics({k: float(v) for k, v in req.metrics.items() if isinstance(v, (int, float))})
        mlflow.set_tags({"sha256": sha, "contract_hash": req.metadata.get("contract_hash", "")})
        info = mlflow.onnx.log_model(onnx_model, name="model", registered_model_name=req.model_name)
        version = str(info.registered_model_version)
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
    try:
        client.get_model_version_by_alias(req.model_name, registry.CHAMPION)
        alias_set = False
    except MlflowException:
        client.set_registered_model_alias(req.model_name, registry.CHAMPION, version)
        alias_set = True
    return {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id, "version": version,
            "champion_alias_set": alias_set}


def publish(req: PublishRequest, onnx_model=None) -> dict:
    """Upload the artifact (and register it); returns the result document."""
    sha = sha256_hex(req.model_bytes)
    prefix = registry.artifact_prefix(req.model_name, sha)
    s3 = s3_client()
    _ensure_bucket(s3, req.bucket, req.create_bucket)

    ml = None
    if req.mlflow.enabled:
        if onnx_model is None:
            import onnx

            onnx_model = onnx.load_from_string(req.model_bytes)
        ml = log_mlflow(req.mlflow, req, sha, onnx_model)
    version = ml["version"] if ml else sha[:16]
    metadata = {**req.metadata, "model_name": req.model_name, "version": version, "sha256": sha,
                "bucket": req.bucket, "prefix": prefix, "mlflow": ml}

    s3.put_object(Bucket=req.bucket, Key=prefix + registry.MODEL_FILE, Body=req.model_bytes,
                  ContentType="application/octet-stream", Metadata={"sha256": sha})
    s3.put_object(Bucket=req.bucket, Key=prefix + registry.PROFILE_FILE,
                  Body=json.dumps(req.profile).encode(), ContentType="application/json")
    s3.put_object(Bucket=req.bucket, Key=prefix + registry.METADATA_FILE,
                  Body=json.dumps(metadata, indent=2, default=str).encode(), ContentType="application/json")

    if ml:
        import mlflow
        from mlflow import MlflowClient

        with mlflow.start_run(run_id=ml["run_id"]):
            mlflow.log_dict(metadata, "metadata.json")
            mlflow.log_dict(req.profile, "profile.json")
        client = MlflowClient(tracking_uri=ml["tracking_uri"], registry_uri=ml["tracking_uri"])
        for k, v in {"sha256": sha, "s3_uri": f"s3://{req.bucket}/{prefix}"}.items():
            client.set_model_version_tag(req.model_name, ml["version"], k, v)

    pointer = None
    if req.models_table:
        pointer = write_first_champion(req.models_table, req.model_name, version, req.bucket, prefix, sha)
    return {"model_name": req.model_name, "version": version, "sha256": sha, "bucket": req.bucket,
            "prefix": prefix, "model_uri": f"s3://{req.bucket}/{prefix}{registry.MODEL_FILE}",
            "metadata_uri": f"s3://{req.bucket}/{prefix}{registry.METADATA_FILE}",
            "profile_uri": f"s3://{req.bucket}/{prefix}{registry.PROFILE_FILE}",
            "mlflow": ml, "champion_pointer": pointer, "metadata": metadata}


def write_first_champion(table_name: str, model_name: str, version: str, bucket: str, prefix: str,
                         sha: str) -> dict:
    """Point the champion at this artifact only if no champion exists (conditional write)."""
    import boto3

    table = boto3.resource("dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
                           or os.environ.get("AWS_ENDPOINT_URL"),
                           region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1").Table(table_name)
    try:
        p = registry.write_pointer(table, model_name=model_name, version=version, bucket=bucket,
                                   prefix=prefix, sha256=sha, expected_version=None)
        return {"written": True, "version": p.version}
    except registry.PointerConflict:
        current = registry.read_pointer(table)
        return {"written": False, "reason": "a champion already exists",
                "current_version": current.version if current else None}
