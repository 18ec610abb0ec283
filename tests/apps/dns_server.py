"""A small authoritative DNS server for the multi-host tests, as a cluster's DNS is for its pods:
A records from a JSON file, `{"name": ["10.0.0.2", ...]}`, read again whenever the file changes,
so a test scales an app up or down by rewriting it. A name that is not in the file is NXDOMAIN;
a known name has no AAAA records. Every query is printed, one line each (`query A name`).

    python dns_server.py --address 10.1.0.1 --records records.json [--ttl 1]
"""
import argparse
import json
import os
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Records(BaseResolver):
    def __init__(self, path: str, ttl: int):
        self.path = path
        self.ttl = ttl
        self.lock = threading.Lock()
        self.mtime = None
        self.names: dict[str, list[str]] = {}

    def current(self) -> dict[str, list[str]]:
        with self.lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                return {}
            if mtime != self.mtime:
                with open(self.path) as f:
                    raw = json.load(f)
                self.names = {k.rstrip(".").lower(): v for k, v in raw.items()}
                self.mtime = mtime
            return self.names

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        print(f"query {qtype} {name}", flush=True)
        names = self.current()
        if name not in names:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qtype == "A":
            for address in names[name]:
                reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=self.ttl))
        return reply


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--records", required=True)
    p.add_argument("--ttl", type=int, default=1)
    args = p.parse_args()
    resolver = Records(args.records, args.ttl)
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [DNSServer(resolver, address=args.address, port=args.port, logger=quiet, tcp=tcp)
               for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    print(f"serving DNS on {args.address}:{args.port}", flush=True)
    try:
        while all(s.isAlive() for s in servers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 1


if __name__ == "__main__":
    sys.exit(main())
