"""One target for every AWS call of the tools, resolved the way the AWS CLI does."""

import pytest

from driftstack.tools import api_client, aws_target
from driftstack.tools.aws_target import FROM_ENV, FROM_OPTION, Target, resolve


@pytest.fixture(autouse=True)
def no_local_state(monkeypatch):
    monkeypatch.setattr(aws_target, "localstack_url_from_state", lambda: None)


def test_options_override_the_environment():
    env = {"AWS_ENDPOINT_URL": "http://env:4566", "AWS_PROFILE": "envp", "AWS_REGION": "eu-west-1",
           "AWS_DEFAULT_REGION": "us-west-2"}
    assert resolve(environ=env) == Target("http://env:4566", "envp", "eu-west-1", FROM_ENV)
    assert resolve("http://opt:1/", "optp", "ap-south-1", environ=env) == Target("http://opt:1", "optp", "ap-south-1",
                                                                                 FROM_OPTION)
    assert resolve(environ={"AWS_DEFAULT_REGION": "us-west-2"}).region == "us-west-2"


def test_localstack_state_then_real_aws(monkeypatch):
    assert resolve(environ={}) == Target()  # nothing configured, no LocalStack here: AWS
    assert not resolve(environ={}).is_local
    monkeypatch.setattr(aws_target, "localstack_url_from_state", lambda: "http://localhost:4566")
    assert resolve(environ={}).endpoint_url == "http://localhost:4566"
    assert resolve(environ={"AWS_PROFILE": "prod"}) == Target(None, "prod", None)  # a profile means AWS


def test_service_specific_endpoints_are_left_to_boto3_unless_an_option_is_given():
    from_env = Target("http://env:4566", endpoint_source=FROM_ENV)
    assert "endpoint_url" not in from_env._endpoint_kwargs("dynamodb")  # boto3 reads AWS_ENDPOINT_URL[_DYNAMODB]
    env = {"AWS_ENDPOINT_URL_S3": "http://s3only:1"}
    Target("http://opt:1", endpoint_source=FROM_OPTION).export(env)
    assert env["AWS_ENDPOINT_URL"] == "http://opt:1" and "AWS_ENDPOINT_URL_S3" not in env
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1" and env["AWS_ACCESS_KEY_ID"] == "test"


def test_the_api_client_uses_the_same_endpoint_as_boto3(monkeypatch, tmp_path):
    monkeypatch.setattr(api_client, "local_ca_file", lambda: tmp_path / "ca.pem")  # none: as given (HTTPS: test_api_client_tls)
    outputs = {"ApiId": "abc", "ApiStage": "prod", "ApiKeyId": "k1"}
    seen = {}

    class FakeApiGateway:
        meta = type("Meta", (), {"region_name": "eu-west-1"})

        def get_api_key(self, apiKey, includeValue):
            return {"value": "secret"}

    def client(self, service):
        seen["endpoint"] = self.endpoint_url
        return FakeApiGateway()

    monkeypatch.setattr(Target, "client", client)
    monkeypatch.setattr(api_client, "deployed_outputs", lambda target, stack: outputs)
    local = api_client.ApiClient.from_stack(target=Target("http://127.0.0.1:4599", endpoint_source=FROM_OPTION))
    assert local.base_url == "http://127.0.0.1:4599/_aws/execute-api/abc/prod" and seen["endpoint"] == "http://127.0.0.1:4599"
    assert local.api_key == "secret"
    aws = api_client.ApiClient.from_stack(target=Target())
    assert aws.base_url == "https://abc.execute-api.eu-west-1.amazonaws.com/prod"


def test_on_aws_the_outputs_come_from_cloudformation(monkeypatch):
    from botocore.exceptions import ClientError

    class FakeCfn:
        def __init__(self, stacks):
            self.stacks = stacks

        def describe_stacks(self, StackName):
            if self.stacks is None:
                raise ClientError({"Error": {"Code": "ValidationError",
                                             "Message": f"Stack with id {StackName} does not exist"}}, "DescribeStacks")
            return {"Stacks": self.stacks}

    monkeypatch.setattr(Target, "client", lambda self, service: FakeCfn([{"Outputs": [
        {"OutputKey": "BucketName", "OutputValue": "b"}]}]))
    assert api_client.deployed_outputs(Target(), "S") == {"BucketName": "b"}
    monkeypatch.setattr(Target, "client", lambda self, service: FakeCfn(None))
    with pytest.raises(api_client.StackNotDeployed, match="`driftstack deploy`"):
        api_client.deployed_outputs(Target(), "S")


def test_a_command_leaves_the_environment_as_it_found_it(monkeypatch, tmp_path):
    import os

    from click.testing import CliRunner

    from driftstack.tools.cli import cli

    monkeypatch.setenv("DRIFTSTACK_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(api_client, "STATE_DIR", tmp_path)
    before = dict(os.environ)
    result = CliRunner().invoke(cli, ["--endpoint-url", "http://127.0.0.1:9", "--profile", "p", "decisions"])
    assert result.exit_code == 3  # no stack outputs: deploy first
    assert dict(os.environ) == before
