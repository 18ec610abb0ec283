"""A test trace receiver for containers: Zipkin's v2 JSON API (POST /api/v2/spans) on
0.0.0.0:9411, each span received appended as a JSON line to the file named by argv[1]; the
standard library only (it runs on the plain app image)."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = sys.argv[1]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        if "chunked" in (self.headers.get("transfer-encoding") or ""):
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        status = 202
        try:
            spans = json.loads(body) if self.path == "/api/v2/spans" else None
            assert isinstance(spans, list)
        except (ValueError, AssertionError):
            spans, status = [], 400
        with lock, open(out, "a") as f:
            for span in spans:
                f.write(json.dumps(span) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 9411), Handler).serve_forever()
