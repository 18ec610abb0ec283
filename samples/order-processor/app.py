"""order-processor: receives the orders that checkout sends through the sidecars."""
import json
import logging
import os

from flask import Flask, request

app = Flask(__name__)
# Keep the output to the orders, as in the quickstart: no per-request access log.
logging.getLogger("werkzeug").setLevel(logging.ERROR)


@app.route("/orders", methods=["POST"])
def get_order():
    data = request.json
    print("Order received: " + json.dumps(data), flush=True)
    return json.dumps({"success": True}), 200, {"Content-Type": "application/json"}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.getenv("APP_PORT", "6001")))
