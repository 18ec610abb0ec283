"""Sends orders to order-processor through the caller's own sidecar, as the checkout sample does,
and prints one JSON line per order: its id, the status, the time it took, the time it was sent
(seconds since the client started), and the body of a failed order.

    DAPR_HTTP_PORT=3500 python order_client.py --seconds 10 --interval 0.05
"""
import argparse
import http.client
import json
import os
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--count", type=int, default=0, help="stop after this many orders (0: no limit)")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--first-id", type=int, default=1)
    args = p.parse_args()
    port = int(os.environ.get("DAPR_HTTP_PORT", "3500"))
    start = time.monotonic()
    order_id = args.first_id
    sent = 0
    while time.monotonic() - start < args.seconds and (args.count == 0 or sent < args.count):
        body = json.dumps({"orderId": order_id})
        sent_at = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
        try:
            conn.request("POST", "/orders", body=body,
                         headers={"dapr-app-id": "order-processor", "content-type": "application/json"})
            resp = conn.getresponse()
            status, text = resp.status, resp.read().decode(errors="replace")
        except OSError as e:
            status, text = 0, f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        line = {"id": order_id, "status": status, "ms": round((time.monotonic() - sent_at) * 1000, 1),
                "at": round(sent_at - start, 3)}
        if status != 200:
            line["body"] = text[:300]
        print(json.dumps(line), flush=True)
        order_id += 1
        sent += 1
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
