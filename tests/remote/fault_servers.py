"""Small real servers on 127.0.0.1 that an S3 client finds broken: one answers 503 to every request,
one accepts connections and never answers, one closes each connection it accepts. Each runs in a
thread and is stopped on leaving."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator

from tests.remote.s3 import LOOPBACK


class _Unavailable(http.server.BaseHTTPRequestHandler):
    requests: list[str]  # set per server: what it was asked

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503, "Service Unavailable")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # pytest shows a failing test's output: the requests are not news


@contextlib.contextmanager
def answering_503() -> Iterator[tuple[str, list[str]]]:
    """An endpoint URL whose server answers every request with 503 Service Unavailable, and the
    requests it got so far."""

    class Handler(_Unavailable):
        requests: list[str] = []  # noqa: RUF012 (this server's own list, read by the test)

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", Handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def never_answering() -> Iterator[tuple[str, list[socket.socket]]]:
    """An endpoint URL whose server accepts connections, reads nothing and never answers, and the
    connections it accepted so far."""
    with _accepting(hang_up=False) as served:
        yield served


@contextlib.contextmanager
def hanging_up() -> Iterator[tuple[str, list[socket.socket]]]:
    """An endpoint URL whose server closes every connection as soon as it accepts it (a client sees
    the connection closed before any answer), and the connections it accepted so far."""
    with _accepting(hang_up=True) as served:
        yield served


@contextlib.contextmanager
def _accepting(*, hang_up: bool) -> Iterator[tuple[str, list[socket.socket]]]:
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])
                if hang_up:
                    accepted[-1].close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=10)
        for connection in accepted:
            connection.close()
        listener.close()


@contextlib.contextmanager
def dripping(target: str, seconds_per_byte: float) -> Iterator[str]:
    """An endpoint URL whose server relays each connection to `target` (``http://host:port``) and
    sends the answers back one byte every `seconds_per_byte`: a server that is up, and slower than
    any read timeout can see (each byte comes well within it)."""
    host, port = target.removeprefix("http://").rsplit(":", 1)
    stop = threading.Event()

    def relay(source: socket.socket, sink: socket.socket, drip: bool) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set() and (data := source.recv(65536)):
                for start in range(0, len(data), 1 if drip else len(data)):
                    if stop.wait(seconds_per_byte if drip else 0):
                        return
                    sink.sendall(data[start : start + 1] if drip else data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    with _accepting(hang_up=False) as (endpoint, accepted):
        relays: list[threading.Thread] = []

        def serve() -> None:
            served = 0
            while not stop.wait(0.05):
                for client in accepted[served:]:
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                    for pair in ((client, upstream, False), (upstream, client, True)):
                        relays.append(threading.Thread(target=relay, args=pair, daemon=True))
                        relays[-1].start()
                    served += 1

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            yield endpoint
        finally:
            stop.set()
            server.join(timeout=10)
            for thread in relays:
                thread.join(timeout=10)
