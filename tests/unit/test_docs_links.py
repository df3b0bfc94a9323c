"""The links the Dagster UI shows: a GX check's Data Docs page and a dbt model's docs are http:// links to the
docs server (PULSE_DOCS_URL), which serves them. A real suite is validated into a temporary PULSE_HOME's Data
Docs, its check metadata built, and the link followed on a real docs server."""

from __future__ import annotations

import urllib.request

import dagster as dg
import duckdb
import pytest

from expectations.runner import DOCS_DIRNAME, run_suite, suite_spec
from orchestration.quality.checks import check_metadata
from orchestration.transform.assets import dbt_docs_metadata
from pulse.ui.docs_server import DocsAddress, DocsServer

DIM_USERS = """
create table dim_users as
    select * from (values
        ('u1', 2, timestamp '2026-01-01 10:00:00', timestamp '2026-01-02 09:00:00'),
        ('u2', 1, timestamp '2026-01-02 11:00:00', timestamp '2026-01-02 11:00:00')
    ) t(user_key, sessions, first_seen_at, last_seen_at);
"""


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    con = duckdb.connect()
    con.execute(DIM_USERS)
    result = run_suite(con, "dim_users", home=home, run_name="run-1")
    con.close()
    return home, result


def test_the_check_links_its_data_docs_page_over_http(validated) -> None:
    home, result = validated
    assert result.docs_page.startswith("validations/dim_users/run-1/") and result.docs_page.endswith(".html")
    assert (home / DOCS_DIRNAME / result.docs_page).is_file()
    docs = DocsAddress("127.0.0.1", 3001)
    meta = check_metadata(suite_spec("dim_users"), result, None, docs)
    assert meta["data_docs"] == dg.MetadataValue.url(docs.gx_url(result.docs_page))
    assert meta["data_docs"].value.startswith("http://127.0.0.1:3001/gx/validations/dim_users/run-1/")
    assert meta["data_docs_index"] == dg.MetadataValue.url("http://127.0.0.1:3001/")
    # the file stays reachable by its path (no server needed), as text: a browser refuses file:// links
    assert meta["data_docs_file"] == dg.MetadataValue.path(str(home / DOCS_DIRNAME / result.docs_page))
    assert not any(getattr(v, "value", v) == result.docs_url for v in meta.values())


def test_without_a_docs_address_the_check_keeps_the_file_links(validated) -> None:
    _, result = validated
    meta = check_metadata(suite_spec("dim_users"), result, None, None)
    assert meta["data_docs"].value == result.docs_url and result.docs_url.startswith("file://")


def test_the_link_opens_the_validation_page_on_the_docs_server(validated) -> None:
    home, result = validated
    server = DocsServer(DocsAddress("127.0.0.1", 0), home / DOCS_DIRNAME, home / "dbt_docs" / "site")
    with server:
        address = DocsAddress("127.0.0.1", server.port)
        link = check_metadata(suite_spec("dim_users"), result, None, address)["data_docs"].value
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(link, timeout=10) as resp:
            page = resp.read().decode()
        assert resp.status == 200
        # GX's validation page, rendered on the server (its tables need no script): the suite and its metrics
        assert "Expectation Validation Result" in page and "users_without_sessions" in page
        with opener.open(address.home_url, timeout=10) as resp:
            home_page = resp.read().decode()
        assert f'href="/gx/{result.docs_page}"' in home_page


def test_a_dbt_models_materialization_links_its_dbt_docs_page() -> None:
    docs = DocsAddress("127.0.0.1", 3001)
    output = dg.Output(None, output_name="fct_sessions", metadata={"unique_id": "model.pulse.fct_sessions"})
    assert dbt_docs_metadata(docs, output) == {
        "dbt_docs": dg.MetadataValue.url("http://127.0.0.1:3001/dbt/#!/model/model.pulse.fct_sessions")
    }
    assert dbt_docs_metadata(None, output) == {}
    assert dbt_docs_metadata(docs, dg.Output(None, output_name="x")) == {}
