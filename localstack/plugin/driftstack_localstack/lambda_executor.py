"""Host-process Lambda runtime executor (LAMBDA_RUNTIME_EXECUTOR=driftstack-host).

LocalStack's default executor starts a Docker container per execution environment and talks to a Go
init binary inside it over HTTP. Here an execution environment is one host process of the
interpreter matching the function's runtime, running ``lambda_shim.py``. Node.js runtimes run
``lambda_shim_node.js`` on the host's Node with the same protocol. LocalStack drives one
invocation at a time per environment and creates more environments for concurrent invocations, so
the executor simply writes a request line to the process and waits for its result line.

Layout under ``$DRIFTSTACK_LOCALSTACK_STATE_DIR/lambda`` (set by the launcher; else LocalStack's tmp dir):
    <function>-<qualifier>-<account>-<region>/<env id>/{log, tmp/}
LocalStack itself unzips code and layers (under TMPDIR, which the launcher points at our state dir).
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from driftstack_localstack import runtime_deps

LOG = logging.getLogger(__name__)
SHIM = Path(__file__).with_name("lambda_shim.py")
NODE_SHIM = Path(__file__).with_name("lambda_shim_node.js")


def state_root() -> Path:
    base = os.environ.get("DRIFTSTACK_LOCALSTACK_STATE_DIR") or config.dirs.tmp
    return Path(base) / "lambda"


def version_dir(function_version: FunctionVersion) -> Path:
    fid = function_version.id
    name = f"{fid.function_name}-{fid.qualifier}-{fid.account}-{fid.region}".replace("$", "")
    return state_root() / name


def node_paths(function_version: FunctionVersion, major: int, runtime_modules: Path, code_dir: str) -> list[str]:
    """NODE_PATH as the AWS Node.js runtime sets it: the layers' nodejs/node<NN>/node_modules and
    nodejs/node_modules (as merged into /opt), the runtime's AWS SDK, /var/runtime, /var/task."""
    opt_versioned, opt = [], []
    for layer in reversed(function_version.config.layers or []):
        root = layer.code.get_unzipped_code_location()
        opt_versioned.append(str(root / "nodejs" / f"node{major}" / "node_modules"))
        opt.append(str(root / "nodejs" / "node_modules"))
    return [*opt_versioned, *opt, str(runtime_modules / "node_modules"), str(runtime_modules), code_dir]


def layer_paths(function_version: FunctionVersion, version: str) -> tuple[list[str], list[str]]:
    """sys.path entries and LD_LIBRARY_PATH entries of the layers, as if merged into /opt.

    Later layers overwrite earlier ones in /opt, so they come first here."""
    paths, libs = [], []
    for layer in reversed(function_version.config.layers or []):
        root = layer.code.get_unzipped_code_location()
        paths += [str(root / "python" / "lib" / f"python{version}" / "site-packages"), str(root / "python")]
        libs.append(str(root / "lib"))
    return paths, libs


class HostRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.work_dir = version_dir(function_version) / id
        self.log_path = self.work_dir / "log"
        self.process: subprocess.Popen | None = None
        self.env_vars: dict[str, str] = {}
        self._result_fd: int | None = None
        self._buffer = b""
        self._log_offset = 0
        self._stopped = False
        self._lock = threading.Lock()  # start/stop/invoke can race (startup timer, shutdown)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, env_vars: dict[str, str]) -> None:
        self.env_vars = {k: str(v) for k, v in env_vars.items()}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "tmp").mkdir(exist_ok=True)
        with self._lock:
            self._spawn()

    def _spawn(self) -> None:
        """Start the runtime process and wait for its init phase (handler import) to finish."""
        fv = self.function_version
        runtime = fv.config.runtime
        code_dir = str(fv.config.code.get_unzipped_code_location())
        provided = str(runtime_deps.provided_dir(runtime))
        shim_config = {"handler": fv.config.handler, "code_dir": code_dir}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.work_dir / "tmp"),  # never the host user's ~/.aws
            "TMPDIR": str(self.work_dir / "tmp"),
            **self.env_vars,
            "LAMBDA_TASK_ROOT": code_dir,
            "LAMBDA_RUNTIME_DIR": provided,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        }
        if runtime_deps.is_node(runtime):
            exe = runtime_deps.node_for(runtime)
            major = runtime_deps.node_major(runtime)
            env["NODE_PATH"] = ":".join(node_paths(fv, major, Path(provided), code_dir))
            env["LD_LIBRARY_PATH"] = ":".join([code_dir, f"{code_dir}/lib", *layer_paths(fv, "")[1]])
            # The gateway also speaks TLS; handlers that post to https://<host>:443 (CDK's custom
            # resource handlers drop the ResponseURL's port) are sent to it, as LocalStack in Docker
            # listens on 443 too.
            shim_config["gateway_port"] = config.GATEWAY_LISTEN[0].port
            argv = [exe, "--enable-source-maps", str(NODE_SHIM)]
        else:
            version = runtime_deps.python_version(runtime)
            exe = runtime_deps.interpreter_for(runtime)
            layer_sys_paths, layer_libs = layer_paths(fv, version)
            shim_config["path_before"] = [code_dir, *layer_sys_paths]
            shim_config["path_after"] = [provided]
            env["LD_LIBRARY_PATH"] = ":".join([code_dir, f"{code_dir}/lib", *layer_libs])  # as /var/task, /opt/lib
            argv = [exe, "-I", "-S", str(SHIM)]
        read_fd, write_fd = os.pipe()
        shim_config["result_fd"] = write_fd
        log = open(self.log_path, "ab")
        try:
            # Same process group as LocalStack: the launcher's stop kills every runtime process too.
            self.process = subprocess.Popen(
                [*argv, json.dumps(shim_config)],
                stdin=subprocess.PIPE, stdout=log, stderr=log, env=env, cwd=code_dir,
                pass_fds=(write_fd,), close_fds=True,
            )
        finally:
            os.close(write_fd)
            log.close()
        self._result_fd, self._buffer = read_fd, b""
        LOG.debug("Started %s (pid %s) for %s", exe, self.process.pid, fv.qualified_arn)
        if self._read_message(timeout=None) is None:
            raise LambdaRuntimeException(
                f"Runtime process for {fv.qualified_arn} exited during init "
                f"(exit code {self.process.wait()}): {self.get_logs()[-2000:]}"
            )

    def stop(self) -> None:
        # Kill first, without the lock: an invocation in flight then sees EOF and returns at once.
        self._stopped = True
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.kill()
        with self._lock:
            self._terminate()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()  # the shim exits when its request stream closes
                proc.wait(timeout=1)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if self._result_fd is not None:
            os.close(self._result_fd)
            self._result_fd = None

    # --- invocation ------------------------------------------------------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout = float(self.function_version.config.timeout)
        with self._lock:
            if self._stopped:
                raise LambdaRuntimeException(f"execution environment {self.id} is stopped")
            if self.process is None or self.process.poll() is not None:
                self._spawn()  # re-init after a timeout or crash, like AWS does
            started = time.monotonic()
            request = {
                "request_id": request_id,
                "invoked_function_arn": payload["invoked-function-arn"],
                "payload": payload["payload"],
                "trace_id": payload.get("trace-id"),
                "deadline_ms": int(time.time() * 1000 + timeout * 1000),
            }
            try:
                self.process.stdin.write(json.dumps(request).encode() + b"\n")
                self.process.stdin.flush()
                message = self._read_message(timeout=timeout)
            except (BrokenPipeError, OSError):
                message = None
            duration_ms = (time.monotonic() - started) * 1000
            max_rss_mb = self._max_rss_mb()
            if message is None:
                result = self._failed(request_id, timeout)
            else:
                result = {"is_error": not message["ok"], "payload": message["payload"], "log": ""}
        logs = self._read_new_logs() + result["log"]
        logs = (
            f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n{logs}"
            f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {self.function_version.config.memory_size} MB\t"
            f"Max Memory Used: {max_rss_mb} MB\t\n"
        )
        return InvocationResult(request_id, result["payload"].encode(), is_error=result["is_error"], logs=logs)

    def _failed(self, request_id: str, timeout: float) -> dict:
        """No result: either the deadline passed (kill the process) or the process died."""
        timed_out = self.process is not None and self.process.poll() is None
        code = None
        if timed_out:
            self.process.kill()
        if self.process is not None:
            code = self.process.wait()
        self._terminate()
        if timed_out:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            message = f"Task timed out after {timeout:.2f} seconds"
            error = {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: {message}"}
            log = f"{now} {request_id} {message}\n"
        else:
            error = {"errorType": "Runtime.ExitError",
                     "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"}
            log = f"{error['errorMessage']}\n"
        return {"is_error": True, "payload": json.dumps(error), "log": log}

    def _read_message(self, timeout: float | None) -> dict | None:
        """One JSON line from the result pipe; None on EOF or when the timeout passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            ready, _, _ = select.select([self._result_fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._result_fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _read_new_logs(self) -> str:
        """Log output written since the previous invocation (the shim flushes before answering)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        self._log_offset += len(data)
        return data.decode("utf-8", errors="replace")

    def _max_rss_mb(self) -> int:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            return kb // 1024
        except (AttributeError, OSError, StopIteration, ValueError):
            return 0

    # --- addresses (the runtime reaches LocalStack on the loopback) --------------------------------
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- per-version preparation -------------------------------------------------------------------
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Unzip code and layers and check the host can run this runtime; failure marks the function Failed."""
        if not function_version.config.runtime:
            raise LambdaRuntimeException("container-image functions are not supported by the host runner")
        runtime_deps.interpreter(function_version.config.runtime)
        runtime_deps.provided_dir(function_version.config.runtime)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()
        for layer in function_version.config.layers or []:
            if layer.code:
                layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        shutil.rmtree(version_dir(function_version), ignore_errors=True)

    @classmethod
    def validate_environment(cls) -> bool:
        return True
