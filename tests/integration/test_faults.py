"""The fault proxies with plain loopback sockets: what a client sees in each state."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from local.faults import TcpFaultProxy, UdpFaultProxy


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP echo server on a free port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionResetError):  # cut() resets this side too
            while data := conn.recv(4096):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def _roundtrip(port: int, payload: bytes = b"ping", timeout: float = 2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(payload)
        return c.recv(100)


def test_tcp_proxy_forwards_until_stalled_then_resumes(echo_server: int):
    with TcpFaultProxy(echo_server) as proxy:
        assert _roundtrip(proxy.port) == b"ping"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as c:
            c.sendall(b"one")
            assert c.recv(10) == b"one"
            proxy.stall()
            c.sendall(b"two")
            with pytest.raises(TimeoutError):  # open, but nothing comes back
                c.recv(10)
            assert proxy.connections == 1
            proxy.heal()
            c.settimeout(2)
            assert c.recv(10) == b"two"  # held, not lost


def test_tcp_proxy_cut_resets_connections_and_refuses_new_ones(echo_server: int):
    with TcpFaultProxy(echo_server) as proxy:
        port = proxy.port
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        c.sendall(b"x")
        assert c.recv(10) == b"x"
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            c.recv(10)
        c.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        proxy.heal()
        assert proxy.port == port
        assert _roundtrip(port) == b"ping"
        assert proxy.accepted == 2


def test_tcp_proxy_in_front_of_nothing_resets_the_client():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with TcpFaultProxy(dead) as proxy, pytest.raises(ConnectionResetError):
        # the reset can beat the end of the handshake (seen on a loaded machine) or come at the read
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        with c:
            c.recv(10)


def test_udp_proxy_relays_both_ways_and_drops_while_stalled():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(0.5)
    with server, client, UdpFaultProxy(server.getsockname()[1]) as proxy:
        assert proxy.url() == f"srt://127.0.0.1:{proxy.port}"
        client.sendto(b"hello", ("127.0.0.1", proxy.port))
        data, peer = server.recvfrom(100)
        assert data == b"hello"
        server.sendto(b"back", peer)
        assert client.recvfrom(100)[0] == b"back"
        proxy.stall()
        client.sendto(b"lost", ("127.0.0.1", proxy.port))
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.recvfrom(100)
        assert proxy.dropped == 1
        proxy.heal()
        client.sendto(b"again", ("127.0.0.1", proxy.port))
        assert server.recvfrom(100)[0] == b"again"
