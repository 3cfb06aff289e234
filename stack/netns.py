"""Run a server in a private network namespace, reachable only through one port on host loopback.

Some servers cannot be told which address to listen on: Milvus 2.3 standalone (PyPI ``milvus``) binds its
gRPC and metrics ports on every interface (``*:19530``, ``*:9091``, ``*:53100``, ...) and its embedded etcd
on fixed ports (127.0.0.1:2379/2380). Started through this script, the server runs in a fresh network
namespace that holds nothing but its own ``lo``: none of its ports can be reached from the host or the
network, and two servers cannot clash on a port. This process binds ``127.0.0.1:HOST_PORT`` in the host
namespace before it leaves it, and forwards every connection to ``127.0.0.1:PORT`` inside.

Needs root, or unprivileged user namespaces (then it maps the caller's own uid and gid). Stdlib only, run by
path (``python stack/netns.py --host-port 31530 --port 19530 -- milvus-server --data DIR``). A signal to the
process group reaches the server directly; this process waits for its child and exits with its status.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from contextlib import suppress

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CHUNK = 1 << 20


def enter_private_network() -> None:
    """Move this (still single-threaded) process into a new network namespace and bring its ``lo`` up."""
    flags = os.CLONE_NEWNET
    uid, gid = os.geteuid(), os.getegid()
    if uid != 0:
        flags |= os.CLONE_NEWUSER
    os.unshare(flags)
    if uid != 0:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        current = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", current | IFF_UP))


def forward(listener: socket.socket, port: int) -> None:
    """Accept on ``listener`` (host side) for ever; each connection is piped to 127.0.0.1:``port`` here."""
    while True:
        outer, _ = listener.accept()
        threading.Thread(target=_relay, args=(outer, port), daemon=True).start()


def _relay(outer: socket.socket, port: int) -> None:
    try:
        inner = socket.create_connection(("127.0.0.1", port))
    except OSError:
        outer.close()
        return
    back = threading.Thread(target=_pump, args=(inner, outer), daemon=True)
    back.start()
    _pump(outer, inner)
    back.join()
    inner.close()
    outer.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until ``source`` ends, then half-close ``sink`` so the other side sees the end too."""
    with suppress(OSError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-port", type=int, required=True, help="port to bind on 127.0.0.1 in the host")
    parser.add_argument("--port", type=int, required=True, help="the server's port inside the namespace")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the server command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no server command given")
    listener = socket.create_server(("127.0.0.1", args.host_port), backlog=128)
    enter_private_network()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)  # the group's signal reaches the server; we wait for it
    server = subprocess.Popen(command)
    threading.Thread(target=forward, args=(listener, args.port), daemon=True).start()
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
