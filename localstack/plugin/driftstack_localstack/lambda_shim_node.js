// Runtime side of the driftstack host Lambda runner for Node.js runtimes. Run as
//
//     node lambda_shim_node.js '<json config>'
//
// with NODE_PATH set like the AWS Node.js runtime (/opt/nodejs/nodeNN/node_modules,
// /opt/nodejs/node_modules, /var/runtime/node_modules (the AWS SDK v3), /var/runtime, /var/task).
// Node core modules only. The protocol is the Python shim's (lambda_shim.py): it imports the
// handler once (the init phase), writes {"ready": true} to the file descriptor `result_fd`, then
// reads one JSON request per line on stdin and writes one JSON result line per request to
// `result_fd`. stdout/stderr are the function's logs; console.* is formatted as the AWS runtime does
// ("<time>\t<request id>\tINFO\t<message>"). The process exits when stdin closes.
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const util = require("util");
const { pathToFileURL } = require("url");

const config = JSON.parse(process.argv[2]);
const resultFd = config.result_fd;
let currentRequestId = undefined;

// --- logging like the AWS runtime -------------------------------------------------------------
function patchConsole() {
  const levels = { log: "INFO", info: "INFO", warn: "WARN", error: "ERROR", debug: "DEBUG", trace: "TRACE" };
  for (const [method, level] of Object.entries(levels)) {
    const stream = method === "error" || method === "warn" ? process.stderr : process.stdout;
    console[method] = (...args) => {
      const line = `${new Date().toISOString()}\t${currentRequestId || "undefined"}\t${level}\t${util.format(...args)}`;
      stream.write(line.replace(/\n/g, "\r") + "\n");  // one log event per call, as on AWS
    };
  }
}

// LocalStack in Docker also listens on 443; here only its gateway port does, and it speaks TLS
// with a self-signed certificate. Connections a handler opens to https://localhost (or 127.0.0.1)
// without a port — CDK's custom-resource handlers post their CloudFormation response that way —
// go to the gateway port instead. Nothing else is redirected.
function redirectLocalHttps(gatewayPort) {
  const https = require("https");
  const local = new Set(["localhost", "127.0.0.1", "::1", "localhost.localstack.cloud"]);
  class LocalGatewayAgent extends https.Agent {
    createConnection(options, callback) {
      const host = options.host || options.hostname;
      if (local.has(host) && (!options.port || Number(options.port) === 443)) {
        options = { ...options, host: "127.0.0.1", port: gatewayPort, rejectUnauthorized: false, servername: undefined };
      }
      return super.createConnection(options, callback);
    }
  }
  https.globalAgent = new LocalGatewayAgent({ keepAlive: false });
}

function send(message) {
  fs.writeSync(resultFd, JSON.stringify(message) + "\n");
}

function errorPayload(err, errorType) {
  const e = err instanceof Error ? err : new Error(typeof err === "string" ? err : util.inspect(err));
  return {
    errorType: errorType || e.name || "Error",
    errorMessage: errorType ? `${e.name}: ${e.message}` : e.message,
    trace: String(e.stack || "").split("\n"),
  };
}

function logError(payload) {
  const line = `${new Date().toISOString()}\t${currentRequestId || "undefined"}\tERROR\t` +
    `Invoke Error \t${JSON.stringify(payload)}`;
  process.stderr.write(line + "\n");
}

class InitError extends Error {
  constructor(payload) {
    super(payload.errorMessage);
    this.payload = payload;
  }
}

// --- handler loading: "dir/module.fn" or "module.nested.fn"; .js/.cjs (CommonJS) or .mjs/ESM ----
async function loadHandler(spec) {
  const slash = spec.lastIndexOf("/");
  const dot = spec.indexOf(".", slash + 1);
  if (dot < 0) {
    throw new InitError({ errorType: "Runtime.MalformedHandlerName", errorMessage: `Bad handler ${spec}`, trace: [] });
  }
  const moduleRel = spec.slice(0, dot);
  const handlerPath = spec.slice(dot + 1);
  const base = path.resolve(config.code_dir, moduleRel);
  const file = [".js", ".mjs", ".cjs"].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!file) {
    const err = new Error(`Cannot find module '${moduleRel}'`);
    err.name = "Error";
    throw new InitError(errorPayload(err, "Runtime.ImportModuleError"));
  }
  let mod;
  try {
    if (file.endsWith(".mjs")) {
      mod = await import(pathToFileURL(file).href);
    } else {
      try {
        mod = require(file);
      } catch (err) {
        if (err && err.code === "ERR_REQUIRE_ESM") {
          mod = await import(pathToFileURL(file).href);
        } else {
          throw err;
        }
      }
    }
  } catch (err) {
    if (err instanceof SyntaxError) throw new InitError(errorPayload(err, "Runtime.UserCodeSyntaxError"));
    if (err && err.code === "MODULE_NOT_FOUND") throw new InitError(errorPayload(err, "Runtime.ImportModuleError"));
    throw new InitError(errorPayload(err));
  }
  let fn = mod;
  for (const part of handlerPath.split(".")) {
    fn = fn == null ? undefined : fn[part];
  }
  if (fn === undefined && mod && mod.default) {  // ESM default export holding the handlers (CommonJS via import)
    fn = mod.default;
    for (const part of handlerPath.split(".")) fn = fn == null ? undefined : fn[part];
  }
  if (typeof fn !== "function") {
    throw new InitError({ errorType: "Runtime.HandlerNotFound",
      errorMessage: `${moduleRel}.${handlerPath} is undefined or not exported`, trace: [] });
  }
  return fn;
}

function makeContext(request, finish) {
  const env = process.env;
  return {
    awsRequestId: request.request_id,
    invokedFunctionArn: request.invoked_function_arn,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || "",
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || "$LATEST",
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || "128",
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || "",
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || "",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(request.deadline_ms - Date.now(), 0),
    // legacy context methods, still honoured by the runtime
    done: (err, result) => finish(err, result),
    succeed: (result) => finish(null, result),
    fail: (err) => finish(err || new Error("handled"), undefined),
  };
}

function invoke(handler, request) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (err, result) => {
      if (done) return;
      done = true;
      if (err !== null && err !== undefined) {
        const payload = errorPayload(err);
        logError(payload);
        resolve({ ok: false, payload: JSON.stringify(payload) });
        return;
      }
      let text;
      try {
        text = result === undefined ? "null" : JSON.stringify(result);
      } catch (e) {
        const payload = errorPayload(e, "Runtime.MarshalError");
        logError(payload);
        resolve({ ok: false, payload: JSON.stringify(payload) });
        return;
      }
      resolve({ ok: true, payload: text });
    };
    currentRequestId = request.request_id;
    if (request.trace_id) process.env._X_AMZN_TRACE_ID = request.trace_id;
    let event;
    try {
      event = request.payload ? JSON.parse(request.payload) : {};
    } catch (e) {
      finish(e);
      return;
    }
    try {
      const out = handler(event, makeContext(request, finish), finish);
      if (out && typeof out.then === "function") {
        out.then((value) => finish(null, value), (err) => finish(err === undefined ? new Error("undefined") : err));
      } else if (handler.length < 3) {
        finish(null, out);  // a synchronous handler without a callback
      }
    } catch (err) {
      finish(err);
    }
  });
}

async function main() {
  patchConsole();
  if (config.gateway_port) redirectLocalHttps(config.gateway_port);
  let handler = null;
  let initError = null;
  try {
    handler = await loadHandler(config.handler);
  } catch (err) {
    initError = err instanceof InitError ? err.payload : errorPayload(err);
    logError(initError);
  }
  send({ ready: true });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    if (initError !== null) {
      send({ ok: false, payload: JSON.stringify(initError) });
    } else {
      send(await invoke(handler, request));
    }
  }
  process.exit(0);
}

main();
