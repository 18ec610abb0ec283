"""Hosts on one machine for the multi-host tests: each host is a Linux network namespace of its
own with one address, wired by a veth pair to a bridge that lives in a namespace of its own too,
so nothing is added to the machine's own network and no traffic leaves these namespaces. A DNS
server on the bridge answers the hosts' queries; each host reads it from its own resolv.conf,
`/etc/netns/<namespace>/resolv.conf`, which `ip netns exec` mounts over /etc/resolv.conf for the
processes of that host only (the machine's own /etc/resolv.conf is never touched).

Everything carries a unique prefix, and `Network.close()` removes every process, namespace and
file it made, whatever state a test left them in.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SKIP_VARIABLE = "DAPR_ENVOY_SKIP_NETNS"
SUBNET = "10.96.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
NETNS_ETC = Path("/etc/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def unavailable() -> str | None:
    """Why network namespaces with veth pairs and a bridge cannot be made here; None if they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"de-probe-{uuid.uuid4().hex[:8]}"
    try:
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()} (needs root or CAP_SYS_ADMIN)"
        for args in (["link", "add", "br0", "type", "bridge"],
                     ["link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]):
            r = ip("-n", probe, *args, check=False)
            if r.returncode != 0:
                return f"`ip link add {' '.join(args[2:])}` failed: {r.stderr.strip()}"
        return None
    finally:
        ip("netns", "del", probe, check=False)


@dataclass
class Host:
    net: "Network"
    name: str
    netns: str
    address: str
    veth: str  # the bridge's end, in the bridge's namespace
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, cmd: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Starts `cmd` on this host (its own process group, output to `log`)."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *cmd], cwd=cwd,
                                    env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, cmd: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *cmd], capture_output=True,
                              text=True, timeout=timeout)

    def http(self, url: str, timeout: float = 5) -> tuple[int, str]:
        """A GET from this host (for the sidecar's admin interface on the host's loopback)."""
        code = ("import sys, urllib.request, urllib.error\n"
                "try:\n"
                f"    r = urllib.request.urlopen({url!r}, timeout={timeout})\n"
                "    print(r.status); sys.stdout.write(r.read().decode())\n"
                "except urllib.error.HTTPError as e:\n"
                "    print(e.code); sys.stdout.write(e.read().decode())\n")
        done = self.run([sys.executable, "-c", code], timeout=timeout + 5)
        if done.returncode != 0:
            raise RuntimeError(f"GET {url} on {self.name}: {done.stderr}")
        status, _, body = done.stdout.partition("\n")
        return int(status), body

    def kill(self) -> None:
        """Kills every process started on this host, as a crashed machine would lose them."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def cut(self) -> None:
        """Unplugs the host: its link to the bridge goes down; nothing answers or refuses."""
        ip("-n", self.net.switch, "link", "set", self.veth, "down")

    def plug(self) -> None:
        ip("-n", self.net.switch, "link", "set", self.veth, "up")


class Network:
    """A bridge and the hosts on it, named `<prefix>-<name>`."""

    def __init__(self, search: str = "default.svc.cluster.local svc.cluster.local cluster.local"):
        self.prefix = f"de-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.switch = f"{self.prefix}-sw"
        self.search = search
        self.hosts: dict[str, Host] = {}
        self.switch_procs: list[subprocess.Popen] = []
        self.made: list[str] = []
        self.made_etc = not NETNS_ETC.exists()
        ip("netns", "add", self.switch)
        self.made.append(self.switch)
        ip("-n", self.switch, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", "br0")
        ip("-n", self.switch, "link", "set", "br0", "up")

    def add_host(self, name: str) -> Host:
        netns = f"{self.prefix}-{name}"
        address = f"{SUBNET}.{10 + len(self.hosts)}"
        veth = f"v{len(self.hosts)}"
        ip("netns", "add", netns)
        self.made.append(netns)
        # The resolver of this host only: a pod's resolv.conf, pointing at the bridge's DNS.
        etc = NETNS_ETC / netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(
            f"search {self.search}\nnameserver {BRIDGE_ADDRESS}\noptions ndots:5 timeout:1 attempts:2\n")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", veth, "netns", self.switch)
        ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", self.switch, "link", "set", veth, "master", "br0")
        ip("-n", self.switch, "link", "set", veth, "up")
        host = Host(self, name, netns, address, veth)
        self.hosts[name] = host
        return host

    def start_dns(self, records: Path, log: Path, ttl: int = 1) -> subprocess.Popen:
        """The DNS server on the bridge's address, serving `records` (see apps/dns_server.py)."""
        server = Path(__file__).parent / "apps" / "dns_server.py"
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.switch, sys.executable, str(server),
                                     "--address", BRIDGE_ADDRESS, "--records", str(records),
                                     "--ttl", str(ttl)], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.switch_procs.append(proc)
        deadline = time.monotonic() + 10
        while "serving DNS" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return proc

    @staticmethod
    def write_records(path: Path, records: dict[str, list[str]]) -> None:
        """Replaces the DNS server's records at once (a rename, so no query sees half a file)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records))
        os.replace(tmp, path)

    def close(self) -> list[str]:
        """Removes every process, namespace and file this network made; returns what could not be
        removed (nothing, normally)."""
        for host in self.hosts.values():
            host.kill()
        for p in self.switch_procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait(timeout=10)
        for netns in reversed(self.made):
            ip("netns", "del", netns, check=False)
            shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)
        if self.made_etc:
            try:
                NETNS_ETC.rmdir()  # only when empty: another run may be using it
            except OSError:
                pass
        return self.leftovers()

    def leftovers(self) -> list[str]:
        left = [n for n in ip("netns", "list").stdout.split() if n.startswith(self.prefix)]
        left += [str(p) for p in NETNS_ETC.glob(f"{self.prefix}*")] if NETNS_ETC.exists() else []
        return left
