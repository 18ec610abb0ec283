"""A test app: answers every request with JSON of what it received (method, path, every header
line as sent, body length, whether it came over TLS), on APP_PORT; over TLS when TLS_CERT and
TLS_KEY name a certificate and its key. GET /_slow?seconds=N answers after N seconds; GET /_health
answers with the status written in the file HEALTH_FILE (200 when it has none; a test flips it);
GET /_count says how many other requests it received."""
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

health_file = os.environ.get("HEALTH_FILE")
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
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if "chunked" in (self.headers.get("transfer-encoding") or ""):
            body = self.read_chunked()
        if self.path == "/_count":
            return self.reply(200, {"count": count})
        if self.path == "/_health":
            status = 200
            if health_file and os.path.exists(health_file):
                status = int(open(health_file).read().strip() or 200)
            return self.reply(status, {"health": status})
        with lock:
            count += 1
        if self.path.startswith("/_slow"):
            time.sleep(float(self.path.partition("seconds=")[2] or 1))
        self.reply(200, {"app": os.environ.get("APP_ID"), "method": self.command, "path": self.path,
                         "headers": [[k.lower(), v] for k, v in self.headers.items()],
                         "body_len": len(body), "tls": isinstance(self.connection, ssl.SSLSocket)})

    def read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
if os.environ.get("TLS_CERT"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
