"""A callee that keeps the books: the app behind the soak (`make soak`) and the chaos tests.

It serves HTTP/1.1 on APP_PORT (asyncio, keep-alive, content-length or chunked bodies), fast
enough for the soak's rate on one core, and counts what reaches it:

- per request class (header `x-soak-class`): requests, and when the request carries
  `x-body-sha256` (the hex SHA-256 of the body its caller sent), whether the body that arrived
  has that digest. A body that does not is answered 422, so the caller sees it too;
- per call id (header `x-call-id`): how many times each call was delivered, so a test can prove
  that no call arrived twice; with LEDGER_JOURNAL set, each id is also appended to that file as
  it arrives (before the answer), so the count survives the app being killed and restarted;
- requests whose `dapr-caller-app-id` is not EXPECT_CALLER (when set): a sidecar that named the
  caller wrongly.

Paths: `GET /_stats` answers the counts as JSON (and is not counted); `/_hang` is counted, then
never answered (the connection stays open); `/_slow?ms=N` is answered after N ms. Everything
else is answered 200 with `{"len": <body bytes>}`. Started as `python3 ledger.py`; prints
`ledger listening on <port>` once it accepts connections.
"""
import asyncio
import hashlib
import json
import os
import sys
from collections import Counter, defaultdict

MAX_HEAD = 64 * 1024
EXPECT_CALLER = os.environ.get("EXPECT_CALLER")
JOURNAL = open(os.environ["LEDGER_JOURNAL"], "a", buffering=1) if os.environ.get("LEDGER_JOURNAL") else None


class Books:
    def __init__(self):
        self.requests = Counter()  # class -> requests
        self.digest_ok = Counter()  # class -> bodies that matched their digest
        self.digest_bad = Counter()  # class -> bodies that did not
        self.bytes = Counter()  # class -> body bytes received
        self.calls = defaultdict(int)  # call id -> deliveries
        self.wrong_caller = 0
        self.hung = 0

    def stats(self) -> dict:
        twice = {k: v for k, v in self.calls.items() if v > 1}
        return {"requests": dict(self.requests), "digest_ok": dict(self.digest_ok),
                "digest_bad": dict(self.digest_bad), "bytes": dict(self.bytes),
                "calls": len(self.calls), "delivered_twice": twice,
                "wrong_caller": self.wrong_caller, "hung": self.hung, "pid": os.getpid()}


BOOKS = Books()


class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = bytearray()
        self.head = None  # (method, path, headers) of the request being read
        self.body = bytearray()
        self.need = 0  # body bytes still expected (content-length)
        self.chunked = False
        self.stuck = False  # a /_hang request: nothing more is read on this connection

    def data_received(self, data):
        if self.stuck:
            return
        self.buf += data
        try:
            while self.step():
                pass
        except ValueError as e:
            self.reply(400, {"error": str(e)}, close=True)

    def step(self) -> bool:
        """Parses what it can; True when it made progress and may make more."""
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise ValueError("request head too large")
                return False
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.head = (method, path, headers)
            self.body = bytearray()
            self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            self.need = 0 if self.chunked else int(headers.get("content-length") or 0)
            return True
        if self.chunked:
            line_end = self.buf.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(self.buf[:line_end]).split(b";")[0], 16)
            if size == 0:
                # The last chunk: optional trailers, then an empty line.
                rest = line_end + 2
                if bytes(self.buf[rest:rest + 2]) == b"\r\n":
                    end = rest + 2
                else:
                    found = self.buf.find(b"\r\n\r\n", rest)
                    if found < 0:
                        return False
                    end = found + 4
                del self.buf[:end]
                self.finish()
                return True
            if len(self.buf) < line_end + 2 + size + 2:
                return False
            self.body += self.buf[line_end + 2:line_end + 2 + size]
            del self.buf[:line_end + 2 + size + 2]
            return True
        if self.need:
            take = min(self.need, len(self.buf))
            self.body += self.buf[:take]
            del self.buf[:take]
            self.need -= take
            if self.need:
                return False
        self.finish()
        return True

    def finish(self):
        method, path, headers = self.head
        self.head = None
        body = bytes(self.body)
        if path == "/_stats":
            return self.reply(200, BOOKS.stats())
        cls = headers.get("x-soak-class", "-")
        BOOKS.requests[cls] += 1
        BOOKS.bytes[cls] += len(body)
        if "x-call-id" in headers:
            BOOKS.calls[headers["x-call-id"]] += 1
            if JOURNAL is not None:
                JOURNAL.write(headers["x-call-id"] + "\n")
        if EXPECT_CALLER and headers.get("dapr-caller-app-id") != EXPECT_CALLER:
            BOOKS.wrong_caller += 1
        want = headers.get("x-body-sha256")
        if want is not None:
            if hashlib.sha256(body).hexdigest() == want.lower():
                BOOKS.digest_ok[cls] += 1
            else:
                BOOKS.digest_bad[cls] += 1
                return self.reply(422, {"error": "body digest mismatch", "len": len(body)})
        if path.startswith("/_hang"):
            BOOKS.hung += 1
            self.stuck = True
            return
        if path.startswith("/_slow"):
            ms = int(path.partition("ms=")[2] or 1000)
            asyncio.get_running_loop().call_later(ms / 1000, self.reply, 200, {"len": len(body)})
            return
        self.reply(200, {"len": len(body)})

    def reply(self, status: int, payload: dict, close: bool = False):
        if self.transport.is_closing():
            return
        out = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 422: "Unprocessable Entity"}.get(status, "Other")
        head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(out)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n")
        self.transport.write(head.encode() + out)
        if close:
            self.transport.close()


async def main():
    port = int(os.environ["APP_PORT"])
    server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", port, backlog=1024)
    print(f"ledger listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
