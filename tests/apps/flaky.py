"""A test app for resiliency: fails the first FAIL_FIRST requests with 500 (or every request with
FAIL_FIRST=-1), hangs on /hang, and reports how many requests it received on GET /_count."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

fail_first = int(os.environ.get("FAIL_FIRST", "0"))
app = os.environ.get("INSTANCE")
count = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        global count
        if self.path == "/_count":
            return self.reply(200, {"count": count})
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with lock:
            count += 1
            n = count
        if self.path == "/hang":
            time.sleep(30)
        if fail_first < 0 or n <= fail_first:
            return self.reply(500, {"attempt": n, "error": "flaky"})
        self.reply(200, {"attempt": n, "body": body, **({"app": app} if app else {})})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler).serve_forever()
