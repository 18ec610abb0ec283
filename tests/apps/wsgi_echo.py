"""A Flask app under the standard library's WSGI server (wsgiref), as a callee: it answers every
request with what a WSGI app sees of it. WSGI follows CGI and folds a header's `-` and `_`
together (`dapr_caller_app_id` and `dapr-caller-app-id` both become HTTP_DAPR_CALLER_APP_ID,
comma-joined), which is what a forged underscore header would exploit.

    python wsgi_echo.py PORT
"""
import http.client
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import Flask, request

# Python's HTTP server refuses more than 100 headers with its own 431; lift that so a test of the
# sidecars' header limits sees theirs.
http.client._MAXHEADERS = 1000

app = Flask(__name__)
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


@app.route("/", defaults={"path": ""}, methods=METHODS)
@app.route("/<path:path>", methods=METHODS)
def echo(path):
    environ = {k: v for k, v in request.environ.items() if k.startswith("HTTP_")}
    return json.dumps({"method": request.method, "path": "/" + path, "environ": environ,
                       "caller": request.headers.get("dapr-caller-app-id")}), 200, {
        "content-type": "application/json"}


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=Quiet).serve_forever()
