"""checkout: posts 10 orders to the order-processor app through its own sidecar.

As in Dapr's service invocation quickstart, the app only adds the `dapr-app-id` header to an
ordinary HTTP call to its sidecar; the sidecar finds the app.
"""
import json
import os
import sys
import time

import requests

base_url = os.getenv("DAPR_HOST", "http://localhost") + ":" + os.getenv("DAPR_HTTP_PORT", "3500")
interval = float(os.getenv("ORDER_INTERVAL_SECONDS", "0.5"))
headers = {"dapr-app-id": "order-processor", "content-type": "application/json"}

for i in range(1, 11):
    order = {"orderId": i}
    result = requests.post(url="%s/orders" % base_url, data=json.dumps(order), headers=headers, timeout=10)
    if result.status_code != 200:
        print("Order failed: %s: %s %s" % (json.dumps(order), result.status_code, result.text), file=sys.stderr, flush=True)
        sys.exit(1)
    print("Order passed: " + json.dumps(order), flush=True)
    time.sleep(interval)
