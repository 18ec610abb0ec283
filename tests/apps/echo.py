"""A test app: answers every request with JSON of what it received (method, path, every header
line as sent, body length), on APP_PORT. GET /_slow?seconds=N answers after N seconds;
GET /_health answers HEALTH_STATUS, read from the file HEALTH_FILE when set (a test flips it)."""
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

health_file = os.environ.get("HEALTH_FILE")


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
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_health":
            status = 200
            if health_file and os.path.exists(health_file):
                status = int(open(health_file).read().strip() or 200)
            return self.reply(status, {"health": status})
        if self.path.startswith("/_slow"):
            time.sleep(float(self.path.partition("seconds=")[2] or 1))
        self.reply(200, {"app": os.environ.get("APP_ID"), "method": self.command, "path": self.path,
                         "headers": [[k.lower(), v] for k, v in self.headers.items()],
                         "body_len": len(body)})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler).serve_forever()
