"""The launcher: refuses clearly, starts/reuses, and stop leaves no process behind."""

from __future__ import annotations

import json
import os
import socket

import boto3
import pytest
import requests

from driftstack.tools import localstack_host

pytestmark = pytest.mark.localstack


def test_refuses_a_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(localstack_host.LocalStackHostError, match=f"port {port} is already in use by another process"):
            localstack_host.start(port, tmp_path / "state")
    assert not (tmp_path / "state" / "localstack.pid").exists()


def test_refuses_without_the_localstack_venv(tmp_path, monkeypatch):
    monkeypatch.setattr(localstack_host, "LOCALSTACK_VENV", tmp_path / "no-venv")
    with pytest.raises(localstack_host.LocalStackHostError, match="run `make setup`"):
        localstack_host.start(localstack_host.free_port(), tmp_path / "state")


def test_refuses_a_venv_without_python_313(tmp_path, monkeypatch):
    venv = tmp_path / "old-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(localstack_host.sys.executable)  # the project's 3.11
    monkeypatch.setattr(localstack_host, "LOCALSTACK_VENV", venv)
    with pytest.raises(localstack_host.LocalStackHostError, match="Python >= 3.13.*make setup"):
        localstack_host.start(localstack_host.free_port(), tmp_path / "state")


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except ProcessLookupError:
                pass
    return pids


def test_start_reuse_status_stop_leaves_no_processes(tmp_path, fixture_code_zip):
    state = tmp_path / "ls"
    port = localstack_host.free_port()
    st = localstack_host.start(port, state)
    try:
        assert st.running and st.healthy and st.port == port
        assert localstack_host.start(port, state).pid == st.pid  # already running: reused
        with pytest.raises(localstack_host.LocalStackHostError, match="already runs on port"):
            localstack_host.start(localstack_host.free_port(), state)

        # the same port speaks HTTPS, with the local CA's certificate: verified with it, refused without
        ca = localstack_host.TLS_DIR / "ca.pem"
        for host in ("localhost", "127.0.0.1"):
            assert "services" in requests.get(f"https://{host}:{port}/_localstack/health", verify=str(ca),
                                              timeout=10).json()
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"https://localhost:{port}/_localstack/health", verify=True, timeout=10)

        lam = boto3.client("lambda", endpoint_url=st.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        lam.create_function(FunctionName="orphan-check", Runtime="python3.12", Handler="handlers.echo",
                            Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": fixture_code_zip})
        lam.get_waiter("function_active_v2").wait(FunctionName="orphan-check")
        runtime_pid = json.loads(lam.invoke(FunctionName="orphan-check", Payload=b"{}")["Payload"].read())["pid"]
        assert runtime_pid in _group_pids(st.pid)  # the runtime process belongs to LocalStack's group
        assert "localstack.request.aws" in localstack_host.logs(state, lines=500)
    finally:
        assert localstack_host.stop(state)
    assert _group_pids(st.pid) == []
    assert not os.path.exists(f"/proc/{runtime_pid}")
    after = localstack_host.status(state)
    assert not after.running and after.pid is None
    assert not localstack_host.stop(state)  # idempotent
