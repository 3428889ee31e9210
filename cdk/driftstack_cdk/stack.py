"""The driftstack stack: storage, serving, monitoring and retraining constructs."""

from aws_cdk import RemovalPolicy, Stack
from constructs import Construct

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
