"""Fault-injecting proxies for loopback tests: put one between a client and a camera, then break it.

``TcpFaultProxy`` (RTSP over TCP, HTTP): ``stall()`` keeps every connection open but forwards nothing
(new connections are accepted and held too); ``cut()`` drops every connection with a reset and refuses
new ones; ``heal()`` undoes both, on the same port.

``UdpFaultProxy`` (SRT): ``stall()`` drops every datagram both ways; ``heal()`` forwards again.

Both listen on 127.0.0.1 only, use daemon threads, and cap their connections/peers.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"
MAX_CONNECTIONS = 64
_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with an RST (linger 0), as a crashed or cut peer looks to the other side."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Wake a pump thread blocked in recv() first (SHUT_RD sends nothing): a close() alone leaves the
    # socket open while another thread is inside a call on it, and no RST goes out.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied TCP connection: the client's socket and ours to the target."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()

    def close(self, *, reset: bool) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for s in (self.client, self.upstream):
            if reset:
                _reset(s)
            else:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()


class _FaultProxy(ABC):
    """What both proxies share: a target, a loopback port, a flowing switch, start/close."""

    default_scheme = "tcp"

    def __init__(self, target_port: int, *, target_host: str = LOOPBACK, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port  # 0 until start() binds one; kept for heal() after a cut
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopping = threading.Event()

    def url(self, scheme: str | None = None, path: str = "") -> str:
        """The target's URL as seen through the proxy, e.g. ``proxy.url("rtsp", "/cam")``."""
        return f"{scheme or self.default_scheme}://{LOOPBACK}:{self.port}{path}"

    @abstractmethod
    def start(self) -> Self:
        """Bind the port and start forwarding."""

    @abstractmethod
    def close(self) -> None:
        """Stop forwarding and release every socket."""

    def stall(self) -> None:
        """Forward nothing until heal()."""
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TcpFaultProxy(_FaultProxy):
    """Forwards 127.0.0.1:``port`` to ``target`` until told to stall or cut."""

    def __init__(self, target_port: int, *, target_host: str = LOOPBACK, port: int = 0) -> None:
        super().__init__(target_port, target_host=target_host, port=port)
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self.accepted = 0  # connections accepted so far (tests check a client really came back)

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        self._stopping.clear()
        self._listen()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._flowing.set()
        self._unlisten()
        self._drop_all(reset=False)

    # --------------------------------------------------------------------------------- faults
    def stall(self) -> None:
        """Keep connections open, accept new ones, forward nothing in either direction."""
        self._flowing.clear()

    def cut(self) -> None:
        """Reset every connection and refuse new ones (the port is closed) until heal()."""
        self._unlisten()
        self._drop_all(reset=True)

    def heal(self) -> None:
        """Forward again; after a cut, listen again on the same port."""
        if self._listener is None:
            self._listen()
        self._flowing.set()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._links)

    # ------------------------------------------------------------------------------- workings
    def _listen(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOOPBACK, self.port))
            s.listen(16)
            self.port = s.getsockname()[1]
            self._listener = s
            self._acceptor = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
            self._acceptor.start()

    def _unlisten(self) -> None:
        with self._lock:
            s, self._listener = self._listener, None
            acceptor, self._acceptor = self._acceptor, None
        if s is not None:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
            s.close()
        if acceptor is not None:
            acceptor.join(2)

    def _drop_all(self, *, reset: bool) -> None:
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            link.close(reset=reset)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: cut() or close()
            with self._lock:
                full = len(self._links) >= MAX_CONNECTIONS
            if full:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
                upstream.settimeout(None)
            except OSError:
                _reset(client)  # the target is down: so is the proxy, for this client
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, upstream)
            with self._lock:
                if self._listener is not listener:  # cut while we were connecting
                    link.close(reset=True)
                    return
                self._links.add(link)
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, src, dst), daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not link.closed.is_set():
                data = src.recv(_CHUNK)
                if not data:
                    break
                # Stalled: hold this chunk (and so stop reading: TCP back-pressure does the rest).
                while not self._flowing.wait(0.1):
                    if link.closed.is_set():
                        return
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._links.discard(link)
        link.close(reset=False)


class UdpFaultProxy(_FaultProxy):
    """Relays datagrams between clients on 127.0.0.1:``port`` and the target (SRT is UDP).

    Each client address gets its own upstream socket, so the target's answers find their way back."""

    default_scheme = "srt"

    def __init__(self, target_port: int, *, target_host: str = LOOPBACK, port: int = 0) -> None:
        super().__init__(target_port, target_host=target_host, port=port)
        self._sock: socket.socket | None = None
        self._peers: dict[tuple[str, int], socket.socket] = {}
        self._thread: threading.Thread | None = None
        self.forwarded = 0
        self.dropped = 0

    def start(self) -> Self:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, self.port))
        self.port = s.getsockname()[1]
        self._sock = s
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(2)
        for s in [*self._peers.values(), *([self._sock] if self._sock else [])]:
            s.close()
        self._peers.clear()
        self._sock = None

    def _loop(self) -> None:
        assert self._sock is not None
        front = self._sock
        while not self._stopping.is_set():
            socks = [front, *self._peers.values()]
            ready, _, _ = select.select(socks, [], [], 0.1)
            for s in ready:
                try:
                    data, addr = s.recvfrom(_CHUNK)
                except OSError:
                    continue
                if not self._flowing.is_set():
                    self.dropped += 1
                    continue
                if s is front:
                    up = self._peers.get(addr)
                    if up is None:
                        if len(self._peers) >= MAX_CONNECTIONS:
                            self.dropped += 1
                            continue
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind((LOOPBACK, 0))
                        up.connect(self.target)
                        self._peers[addr] = up
                    with contextlib.suppress(OSError):  # target down: ICMP refusals are expected
                        up.send(data)
                else:
                    client = next((a for a, p in self._peers.items() if p is s), None)
                    if client is not None:
                        with contextlib.suppress(OSError):
                            front.sendto(data, client)
                self.forwarded += 1
