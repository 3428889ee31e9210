// nodejs20.x: the AWS SDK v3 comes from the runtime (NODE_PATH), not from this zip.
const { S3Client, PutObjectCommand } = require("@aws-sdk/client-s3");

const s3 = new S3Client({ forcePathStyle: true });

exports.handler = async (event) => {
  const cents = event.priced.reduce((sum, item) => sum + item.cents, 0);
  const receipt = {
    order_id: event.order_id,
    total_cents: cents,
    lines: event.priced.length,
    node: process.versions.node,
    sdk: require.resolve("@aws-sdk/client-s3"),
  };
  console.log("receipt", JSON.stringify(receipt));
  await s3.send(new PutObjectCommand({
    Bucket: process.env.RECEIPTS_BUCKET,
    Key: `receipts/${event.order_id}.json`,
    Body: JSON.stringify(receipt),
    ContentType: "application/json",
  }));
  return {
    order_id: event.order_id,
    total_cents: cents,
    key: `receipts/${event.order_id}.json`,
    split_on: event.split_on,
    priced_on: [...new Set(event.priced.map((item) => item.priced_on))],
  };
};
