import json
import os
import sys

import boto3  # provided by the runtime


def handler(event, context):
    body = boto3.client("s3").get_object(Bucket=os.environ["RECEIPTS_BUCKET"], Key=event["key"])["Body"].read()
    receipt = json.loads(body)
    if receipt["total_cents"] != event["total_cents"]:
        raise ValueError(f"receipt says {receipt['total_cents']}, workflow says {event['total_cents']}")
    return {**event, "audited_on": "%d.%d" % sys.version_info[:2], "receipt": receipt}
