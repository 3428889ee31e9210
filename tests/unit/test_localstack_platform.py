"""Host mode runs Lambda code natively with manylinux x86_64 layers: the launcher refuses other
platforms with a message that says why and what to use instead."""

import pytest
from click.testing import CliRunner

from driftstack.tools import localstack_host
from driftstack.tools.cli import EXIT_NOT_READY, cli


@pytest.mark.parametrize("system,machine", [("Darwin", "arm64"), ("Linux", "aarch64"), ("Windows", "AMD64"),
                                            ("Darwin", "x86_64")])
def test_launcher_fails_clearly_off_linux_x86_64(system, machine, monkeypatch):
    monkeypatch.setattr(localstack_host.platform, "system", lambda: system)
    monkeypatch.setattr(localstack_host.platform, "machine", lambda: machine)
    with pytest.raises(localstack_host.LocalStackHostError) as err:
        localstack_host.start(localstack_host.free_port(), "/nonexistent-state-dir-for-test")
    msg = str(err.value)
    assert "Linux x86_64 only" in msg and f"{system} {machine}" in msg and "docker-compose" in msg
    result = CliRunner().invoke(cli, ["localstack", "prepare"])  # one line, "environment not ready"
    assert result.exit_code == EXIT_NOT_READY and "Linux x86_64 only" in result.stderr


def test_linux_x86_64_is_accepted():
    localstack_host.check_platform("Linux", "x86_64")
