"""stack/netns.py: a server that listens on every interface is reachable only through one host loopback port."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

import pytest

from stack.services import ManagedProcess, free_port, private_network_works
from tests.conftest import require

NETNS = Path(__file__).resolve().parents[2] / "stack" / "netns.py"


def host_listeners() -> set[tuple[str, int]]:
    """(hex address, port) of every TCP socket listening in this process's network namespace."""
    found = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                found.add((address, int(port, 16)))
    return found


def get(port: int, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_server_on_all_interfaces_is_only_reachable_through_the_loopback_port(tmp_path: Path) -> None:
    require(private_network_works(), "a private network namespace (root or user namespaces)")
    (tmp_path / "marker.txt").write_text("inside")
    host_port, inner_port = free_port(), free_port()
    server = ManagedProcess("http", [sys.executable, str(NETNS), "--host-port", str(host_port), "--port",
                                     str(inner_port), "--", sys.executable, "-m", "http.server", "--bind", "0.0.0.0",
                                     "--directory", str(tmp_path), str(inner_port)], tmp_path / "http.log")
    server.start()
    try:
        assert b"marker.txt" in get(host_port)
        listeners = host_listeners()
        assert ("0100007F", host_port) in listeners  # the forwarder: 127.0.0.1 only
        assert all(port != host_port for address, port in listeners if address != "0100007F")
        assert all(port != inner_port for _, port in listeners)  # the server's own socket is not on the host
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=2)
