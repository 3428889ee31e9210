import sys
from decimal import Decimal

PRICES = {"apple": Decimal("0.50"), "pear": Decimal("0.75"), "melon": Decimal("3.20")}


def handler(event, context):
    if event["sku"] not in PRICES:
        raise KeyError(f"unknown sku {event['sku']}")
    amount = PRICES[event["sku"]] * event["qty"]
    return {"sku": event["sku"], "qty": event["qty"], "cents": int(amount * 100),
            "priced_on": "%d.%d" % sys.version_info[:2]}
