// Node.js handlers for the host runner tests (the same zip as the Python fixtures).
exports.echo = async (event, context) => {
  const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts"); // from the runtime
  console.log("node-echo-marker", event.marker || "");
  const identity = await new STSClient({}).send(new GetCallerIdentityCommand({}));
  let hostModule = null;
  try {
    require.resolve("aws-cdk"); // in cdk/node_modules on this host: must not be visible
    hostModule = "visible";
  } catch (e) {
    hostModule = e.code;
  }
  return {
    event,
    pid: process.pid,
    node: process.versions.node,
    sdk: require.resolve("@aws-sdk/client-sts"),
    account: identity.Account,
    greeting: process.env.GREETING || null,
    requestId: context.awsRequestId,
    remainingMs: context.getRemainingTimeInMillis(),
    hostModule,
    executionEnv: process.env.AWS_EXECUTION_ENV,
  };
};

exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { via: "callback", n: event.n }), 10);
};

exports.fail = async (event) => {
  throw new TypeError(`bad input: ${event.why}`);
};
