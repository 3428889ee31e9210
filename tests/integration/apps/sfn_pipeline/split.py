import sys


def handler(event, context):
    items = [{"sku": sku, "qty": qty, "order_id": event["order_id"]} for sku, qty in event["items"].items()]
    return {"order_id": event["order_id"], "items": items, "split_on": "%d.%d" % sys.version_info[:2]}
