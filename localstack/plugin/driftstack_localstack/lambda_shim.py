"""Runtime side of the driftstack host Lambda runner. Run by the function's interpreter as

    python3.X -I -S lambda_shim.py '<json config>'

Standalone (stdlib only): it must not see the host's site-packages. It builds sys.path like the AWS
Python runtime (code, layers, stdlib, runtime-provided boto3), imports the handler once (the init
phase), then serves invocations: one JSON line per request on stdin, one JSON line per result on
the file descriptor ``result_fd``. stdout/stderr are the function's logs (the executor forwards
them to CloudWatch Logs). The process exits when stdin closes, i.e. when LocalStack goes away.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback


class LambdaContext:
    """The context object AWS passes to handlers (the attributes Powertools and users rely on)."""

    def __init__(self, request: dict) -> None:
        env = os.environ
        self.aws_request_id = request["request_id"]
        self.invoked_function_arn = request["invoked_function_arn"]
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(int(self._deadline_ms - time.time() * 1000), 0)


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def user_traceback(exc: BaseException):
    """The exception's traceback without this shim's own frames (AWS shows only user code)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def error_payload(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict:
    frames = traceback.extract_tb(user_traceback(exc))
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(frames),
    }


def log_error(payload: dict, exc: BaseException | None = None) -> None:
    """Like the AWS runtime: '[ERROR] Type: message' plus the traceback, in the function's log."""
    lines = [f"[ERROR] {payload['errorType']}: {payload['errorMessage']}"]
    if exc is not None:
        lines.append("".join(traceback.format_exception(type(exc), exc, user_traceback(exc))).rstrip())
    print("\n".join(lines), file=sys.stderr, flush=True)


def load_handler(spec: str):
    """Import 'module.function' (module may be 'dir/module'); AWS's error types on failure."""
    module_name, _, func_name = spec.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InitError(error_payload(e, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {e}"), e)
    except SyntaxError as e:
        raise InitError(error_payload(e, "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {e}"), e)
    except Exception as e:
        raise InitError(error_payload(e), e)
    handler = getattr(module, func_name, None)
    if handler is None:
        exc = AttributeError(func_name)
        raise InitError(error_payload(exc, "Runtime.HandlerNotFound", f"Handler '{func_name}' missing on module '{module_name}'"), exc)
    return handler


class InitError(Exception):
    def __init__(self, payload: dict, cause: BaseException) -> None:
        super().__init__(payload["errorMessage"])
        self.payload = payload
        self.cause = cause


def invoke(handler, request: dict, request_filter: _RequestIdFilter) -> dict:
    request_filter.request_id = request["request_id"]
    if request.get("trace_id"):
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
    try:
        event = json.loads(request["payload"]) if request["payload"] else {}
        result = handler(event, LambdaContext(request))
    except Exception as e:
        payload = error_payload(e)
        log_error(payload, e)
        return {"ok": False, "payload": json.dumps(payload)}
    try:
        return {"ok": True, "payload": json.dumps(result)}
    except (TypeError, ValueError) as e:
        payload = error_payload(e, "Runtime.MarshalError", f"Unable to marshal response: {e}")
        log_error(payload)
        return {"ok": False, "payload": json.dumps(payload)}


def main() -> None:
    config = json.loads(sys.argv[1])
    # sys.path like /var/task, /opt/python/..., stdlib, /var/lang/.../site-packages (boto3)
    sys.path[:] = config["path_before"] + [p for p in sys.path if p] + config["path_after"]
    os.chdir(config["code_dir"])
    requests = os.fdopen(os.dup(0), "rb")
    results = os.fdopen(config["result_fd"], "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the handler must not read our protocol
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)

    # The AWS runtime logs the root logger to stdout with the request id.
    request_filter = _RequestIdFilter()
    log_handler = logging.StreamHandler(sys.stdout)
    log_handler.addFilter(request_filter)
    log_handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S"))
    logging.Formatter.converter = time.gmtime
    logging.getLogger().addHandler(log_handler)

    def send(message: dict) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        results.write(json.dumps(message).encode() + b"\n")

    handler, init_error = None, None
    try:
        handler = load_handler(config["handler"])
    except InitError as e:
        init_error = e.payload
        log_error(e.payload, e.cause)
    send({"ready": True})

    for line in requests:
        request = json.loads(line)
        if init_error is not None:
            send({"ok": False, "payload": json.dumps(init_error)})
        else:
            send(invoke(handler, request, request_filter))


if __name__ == "__main__":
    main()
