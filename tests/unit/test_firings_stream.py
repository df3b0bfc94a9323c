"""GET /stream/firings (pulse/activation/serve.py): the read API on uvicorn in a thread, read by a real HTTP client
(http.client, line by line) while firings are inserted into the live state database."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest
from live_feed import create_feed, insert_firings
from test_serve import LiveServer

from pulse.activation.serve import create_app


class Server(LiveServer):
    """test_serve's live server; an open stream may hold a graceful shutdown, so it waits 1 s at most."""

    def __init__(self, app) -> None:
        super().__init__(app, graceful_shutdown_seconds=1)


class Stream:
    """One open GET /stream/firings, read event by event."""

    def __init__(self, port: int, query: str = "", headers: dict | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", "/stream/firings" + query, headers=headers or {})
        self.response = self.conn.getresponse()

    def next_block(self) -> list[str]:
        """The lines of the next event or comment block (up to a blank line)."""
        lines = []
        while True:
            line = self.response.readline()
            assert line, "the stream ended"
            text = line.decode().rstrip("\n")
            if text == "":
                if lines:
                    return lines
                continue
            lines.append(text)

    def next_firing(self) -> tuple[int, dict]:
        while True:
            block = self.next_block()
            if any(line.startswith("id: ") for line in block):
                fields = dict(line.split(": ", 1) for line in block if not line.startswith(":"))
                assert fields["event"] == "firing"
                return int(fields["id"]), json.loads(fields["data"])

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def live(tmp_path: Path):
    state_db = tmp_path / "live" / "state.sqlite"
    create_feed(state_db)
    exports = tmp_path / "exports"
    exports.mkdir()
    server = Server(create_app(exports, live_state=state_db, firings_keepalive=0.3))
    yield server, state_db
    server.stop()


def test_new_firings_stream_as_they_are_recorded_and_last_event_id_resumes(live) -> None:
    server, state_db = live
    old = insert_firings(state_db, 2)  # before the client connects: not sent (the stream starts at the end)
    stream = Stream(server.port)
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        first = stream.next_block()
        assert first[0].startswith("retry: ")
        keys = insert_firings(state_db, 3, start=2)
        got = [stream.next_firing() for _ in range(3)]
        assert [seq for seq, _ in got] == [3, 4, 5]
        assert [f["firing_key"] for _, f in got] == keys
        assert got[0][1]["trigger_name"] == "cart_abandonment" and got[0][1]["evidence"]["cart_adds"] == 1
        # nothing new: a keep-alive comment within the keep-alive interval
        assert stream.next_block() == [": keep-alive"]
        more = insert_firings(state_db, 1, start=5)
        assert stream.next_firing()[1]["firing_key"] == more[0]
    finally:
        stream.close()

    resumed = Stream(server.port, headers={"Last-Event-ID": "4"})
    try:
        assert [resumed.next_firing()[0] for _ in range(2)] == [5, 6]
    finally:
        resumed.close()
    everything = Stream(server.port, query="?after=0")
    try:
        assert [everything.next_firing()[1]["firing_key"] for _ in range(2)] == old
    finally:
        everything.close()


def test_a_bad_last_event_id_is_named_and_no_state_is_503(live, tmp_path: Path) -> None:
    server, _ = live
    stream = Stream(server.port, headers={"Last-Event-ID": "abc"})
    try:
        assert stream.response.status == 400
        assert "Last-Event-ID" in json.loads(stream.response.read())["detail"]
    finally:
        stream.close()
    exports = tmp_path / "exports2"
    exports.mkdir()
    other = Server(create_app(exports))
    try:
        stream = Stream(other.port)
        assert stream.response.status == 503
        stream.close()
    finally:
        other.stop()


def test_open_streams_end_when_the_server_stops(live) -> None:
    """serve() sets this event on SIGTERM / Ctrl-C: an open stream then ends (instead of holding up the shutdown)."""
    server, state_db = live
    stream = Stream(server.port)
    try:
        assert stream.next_block()[0].startswith("retry: ")
        server.app.state.firings_streams_stopping.set()
        deadline = time.monotonic() + 5
        while stream.response.readline():
            assert time.monotonic() < deadline, "the stream did not end"
    finally:
        stream.close()


def test_the_stream_waits_for_a_database_that_does_not_exist_yet(tmp_path: Path) -> None:
    state_db = tmp_path / "live" / "state.sqlite"
    exports = tmp_path / "exports"
    exports.mkdir()
    server = Server(create_app(exports, live_state=state_db, firings_keepalive=0.2))
    try:
        stream = Stream(server.port)
        assert stream.next_block()[0].startswith("retry: ")
        assert stream.next_block() == [": keep-alive"]
        create_feed(state_db)  # the processor starts: every firing it records is new to this client
        keys = insert_firings(state_db, 2)
        assert [stream.next_firing()[1]["firing_key"] for _ in range(2)] == keys
        stream.close()
    finally:
        server.stop()
