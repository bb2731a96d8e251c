"""503 while PostgreSQL is unreachable, and recovery without a restart once it is back.

The outage is real at the network level: the service talks to PostgreSQL through a TCP relay that the
test cuts (closing every connection) and restores.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import build_services
from api.settings import Settings
from tests.api.helpers import auth_headers


class Relay:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: socket.socket | None = None
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        self.port = server.getsockname()[1]
        server.listen(32)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.server is not None
        with contextlib.suppress(OSError):  # wakes the blocked accept() so the port really closes
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()


@pytest.fixture
def relayed(db_url: str, tmp_path) -> Iterator[tuple[TestClient, Relay]]:
    assert db_url.startswith("postgresql"), "the outage is simulated on the PostgreSQL connection"
    relay = Relay(("127.0.0.1", 5432))
    relay.start()
    url = db_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}") + "?connect_timeout=3"
    settings = Settings(environment="test", data_dir=tmp_path / "data", database_url=url, workers=0)
    services = build_services(settings)
    app = create_app(services=services, start_workers=False, publish_checkpoints=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(auth_headers(services))
        yield client, relay
    relay.cut()
    services.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_unreachable_database_gives_503_and_recovers(relayed, credit_artifact):
    client, relay = relayed
    assert client.get("/healthz").status_code == 200
    relay.cut()
    for _ in range(2):
        resp = client.get("/healthz")
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "unavailable" and "Traceback" not in resp.text
    resp = client.get("/v1/decisions/x")
    assert resp.status_code == 503
    relay.start()  # same port: the database is back
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").json()["ledger_size"] == 0
    assert client.get("/v1/decisions", params={"limit": 1}).status_code == 200
