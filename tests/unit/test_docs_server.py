"""The docs server (pulse/ui/docs_server.py): GX Data Docs under /gx/, dbt docs under /dbt/, a home page listing the
validation pages, served for real on a free loopback port; and PULSE_DOCS_URL, the address the links use."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from pulse.ui.docs_server import (
    DEFAULT_DOCS_URL,
    DocsAddress,
    DocsServer,
    DocsUrlError,
    docs_address,
    docs_address_for_links,
    validation_pages,
)

PAGE = "validations/fct_sessions/8f0c0f8e-run/20261207T030000.000000Z/pulse_metrics-fct_sessions-metrics.html"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy on loopback


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


def get(url: str, follow: bool = True) -> tuple[int, Message, bytes]:
    """(status, headers (case-insensitive), body)"""
    opener = OPENER if follow else urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def write_sites(home: Path) -> tuple[Path, Path]:
    gx = home / "gx_data_docs"
    dbt = home / "dbt_docs" / "site"
    (gx / PAGE).parent.mkdir(parents=True)
    (gx / PAGE).write_text("<html><body><h1>fct_sessions validation</h1></body></html>")
    older = gx / "validations" / "dim_users" / "run-0" / "20261206T000000Z" / "x.html"
    older.parent.mkdir(parents=True)
    older.write_text("<html>dim_users</html>")
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    (gx / "index.html").write_text("<html>GX index</html>")
    dbt.mkdir(parents=True)
    (dbt / "index.html").write_text("<html>dbt docs</html>")
    (dbt / "manifest.json").write_text('{"nodes": {}}')
    (dbt / "catalog.json").write_text('{"nodes": {}}')
    (home / "secret.txt").write_text("not served")
    return gx, dbt


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[DocsServer, Path, Path]]:
    gx, dbt = write_sites(tmp_path)
    server = DocsServer(DocsAddress("127.0.0.1", 0), gx, dbt).start()
    yield server, gx, dbt
    server.stop()


# ------------------------------------------------------------------------------------------------- PULSE_DOCS_URL


def test_the_address_defaults_to_port_3001_on_loopback() -> None:
    address = docs_address({})
    assert address == DocsAddress("127.0.0.1", 3001)
    assert address.url == DEFAULT_DOCS_URL == "http://127.0.0.1:3001"
    assert docs_address({"PULSE_DOCS_URL": "http://docs.internal:8123/"}) == DocsAddress("docs.internal", 8123)
    assert docs_address({"PULSE_DOCS_URL": "http://[::1]:8123"}).url == "http://[::1]:8123"


@pytest.mark.parametrize(
    "value",
    ["https://127.0.0.1:3001", "127.0.0.1:3001", "http://127.0.0.1", "http://127.0.0.1:0", "http://:3001",
     "http://127.0.0.1:99999", "http://127.0.0.1:3001/docs", "http://127.0.0.1:3001?x=1", "docs"],
)  # fmt: skip
def test_a_bad_address_is_an_error_naming_the_variable_and_the_value(value: str) -> None:
    with pytest.raises(DocsUrlError, match=re.escape(f"PULSE_DOCS_URL={value!r}: expected http://HOST:PORT")):
        docs_address({"PULSE_DOCS_URL": value})


def test_a_run_warns_about_a_bad_address_and_goes_on() -> None:
    warnings: list[str] = []
    assert docs_address_for_links(warnings.append, {"PULSE_DOCS_URL": "ftp://x:1"}) is None
    assert len(warnings) == 1 and "PULSE_DOCS_URL='ftp://x:1'" in warnings[0] and "file://" in warnings[0]
    assert docs_address_for_links(warnings.append, {}) == DocsAddress("127.0.0.1", 3001)


def test_links_quote_the_page_path_and_name_the_dbt_node() -> None:
    address = DocsAddress("127.0.0.1", 3001)
    assert address.gx_url("validations/s/run 1/20261207T03:00Z/a#b.html") == (
        "http://127.0.0.1:3001/gx/validations/s/run%201/20261207T03%3A00Z/a%23b.html"
    )
    assert address.dbt_url() == "http://127.0.0.1:3001/dbt/"
    assert address.dbt_url("model.pulse.fct_sessions") == "http://127.0.0.1:3001/dbt/#!/model/model.pulse.fct_sessions"
    assert address.dbt_url("source.pulse.raw.events") == "http://127.0.0.1:3001/dbt/#!/source/source.pulse.raw.events"


# ------------------------------------------------------------------------------------------------- serving


def test_it_serves_the_data_docs_and_the_dbt_docs(served) -> None:
    server, gx, _ = served
    status, headers, body = get(server.url + "/gx/" + PAGE)
    assert status == 200 and b"fct_sessions validation" in body
    assert headers["Content-Type"].startswith("text/html")
    assert get(server.url + "/gx/index.html")[2] == b"<html>GX index</html>"
    status, _, body = get(server.url + "/dbt/")
    assert status == 200 and body == b"<html>dbt docs</html>"
    status, headers, body = get(server.url + "/dbt/manifest.json")
    assert status == 200 and headers["Content-Type"] == "application/json" and body == b'{"nodes": {}}'
    assert get(server.url + "/dbt/catalog.json")[0] == 200
    # a page written after the server started is served too (it reads the files on each request)
    (gx / "validations" / "new.html").write_text("new")
    assert get(server.url + "/gx/validations/new.html")[2] == b"new"


def test_the_site_roots_redirect_to_their_index(served) -> None:
    server, _, _ = served
    status, headers, _ = get(server.url + "/dbt", follow=False)
    assert status == 301 and headers["Location"] == "/dbt/"


def test_nothing_outside_the_two_sites_is_served(served) -> None:
    server, _, _ = served
    for path in ("/secret.txt", "/gx/../secret.txt", "/gx/%2e%2e/secret.txt", "/dbt/../../secret.txt", "/other/"):
        status, _, body = get(server.url + path)
        assert status == 404, path
        assert b"not served" not in body
    status, _, body = get(server.url + "/gx/validations/")  # no directory listings
    assert status == 404 and b"fct_sessions" not in body


def test_the_home_page_lists_the_newest_validation_pages_first(served) -> None:
    server, _, _ = served
    status, _, body = get(server.url + "/")
    assert status == 200
    text = body.decode()
    assert text.index("fct_sessions") < text.index("dim_users")  # newest first
    assert f'href="/gx/{PAGE}"' in text
    assert 'href="/dbt/"' in text
    assert "http://" not in text and "https://" not in text  # plain HTML: no CDN script or style
    pages = validation_pages(served[1])
    assert [p.suite for p in pages] == ["fct_sessions", "dim_users"]
    assert pages[0].run == "8f0c0f8e-run" and pages[0].page == PAGE


def test_missing_docs_say_where_they_come_from(tmp_path: Path) -> None:
    server = DocsServer(DocsAddress("127.0.0.1", 0), tmp_path / "gx_data_docs", tmp_path / "dbt_docs" / "site")
    with server:
        status, _, body = get(server.url + "/dbt/")
        assert status == 404 and b"generated at the end of a run's dbt step" in body
        status, _, body = get(server.url + "/gx/index.html")
        assert status == 404 and b"the Great Expectations checks write them during a run" in body
        status, _, body = get(server.url + "/")
        assert status == 200 and b"No validation yet" in body and b"dbt docs: none yet" in body


def test_stop_closes_the_port(served) -> None:
    server, _, _ = served
    url = server.url
    assert get(url + "/")[0] == 200
    server.stop()
    with pytest.raises(urllib.error.URLError):
        OPENER.open(url + "/", timeout=5)


def test_a_taken_port_is_an_os_error(served) -> None:
    server, gx, dbt = served
    with pytest.raises(OSError):
        DocsServer(DocsAddress("127.0.0.1", server.port), gx, dbt).start()


def test_a_client_that_goes_away_mid_answer_is_not_an_error(served, capfd) -> None:
    import socket

    server, gx, _ = served
    (gx / "big.html").write_bytes(b"x" * (8 << 20))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /gx/big.html HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
    time.sleep(0.5)
    assert get(server.url + "/")[0] == 200  # still serving
    assert "Traceback" not in capfd.readouterr().err
