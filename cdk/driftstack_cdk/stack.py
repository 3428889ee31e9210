"""The driftstack stack: storage, serving, monitoring and retraining constructs."""

from aws_cdk import RemovalPolicy, Stack
from constructs import Construct

from driftstack_cdk import log_retention, nag
from driftstack_cdk.monitoring import Monitoring
from driftstack_cdk.operations import Operations
from driftstack_cdk.retraining import Retraining
from driftstack_cdk.serving import Serving
from driftstack_cdk.storage import Storage


class DriftstackStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Local and demo stacks are disposable; `-c retain=true` keeps data on `cdk destroy` (AWS).
        retain = str(self.node.try_get_context("retain") or "false").lower() == "true"
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.storage = Storage(self, "Storage", removal_policy=removal)
        self.serving = Serving(self, "Serving", storage=self.storage, removal_policy=removal)
        self.retraining = Retraining(self, "Retraining", storage=self.storage, layers=self.serving.layers,
                                     archive_env=self.serving.archive_env, removal_policy=removal)
        self.monitoring = Monitoring(self, "Monitoring", storage=self.storage, serving=self.serving,
                                     retraining=self.retraining)
        # Alarms -> the retraining notification topic (one topic for people to subscribe to), dashboard.
        self.operations = Operations(self, "Operations", storage=self.storage, serving=self.serving,
                                     retraining=self.retraining, topic=self.retraining.topic)
        # Every function's log group kept `-c log_retention_days=N` days (default 30): driftstack_cdk/log_retention.py
        log_retention.apply(self)
        nag.acknowledge(self)  # every accepted cdk-nag finding and its reason: driftstack_cdk/nag.py
