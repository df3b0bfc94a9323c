"""The docs server: Great Expectations Data Docs and dbt docs over HTTP, beside the Dagster UI.

A browser refuses to open a ``file://`` link from an ``http://`` page (the Dagster UI), so the Data Docs
links in the check metadata and the dbt docs links on the dbt assets point at this small static server,
which `pulse ui`, `pulse live` and `pulse docs` start (docs/quality.md, "Data Docs")::

    /                 the docs home: a link to the dbt docs and the latest Data Docs validation pages
    /gx/...           $PULSE_HOME/gx_data_docs: GX's site (index.html, validations/..., expectations/...)
    /dbt/             $PULSE_HOME/dbt_docs/site: dbt's index.html, manifest.json and catalog.json

Its address is ``PULSE_DOCS_URL`` (default ``http://127.0.0.1:3001``): where it listens AND what the links
written during a run point at, so a run started outside the UI (`pulse run`, a schedule) writes links that
work whenever the UI is up. It only reads files; it never opens the warehouse. No Dagster here.
"""

from __future__ import annotations

import html
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

DOCS_URL_VARIABLE = "PULSE_DOCS_URL"
DEFAULT_DOCS_URL = "http://127.0.0.1:3001"
GX_PREFIX = "/gx/"
DBT_PREFIX = "/dbt/"
# The docs home lists at most this many validation pages, newest first.
HOME_VALIDATIONS_LIMIT = 100


class DocsUrlError(ValueError):
    """PULSE_DOCS_URL is not an http://HOST:PORT address."""


@dataclass(frozen=True)
class DocsAddress:
    """Where the docs server listens and where the links point: ``http://HOST:PORT``."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def home_url(self) -> str:
        return f"{self.url}/"

    def gx_url(self, page: str) -> str:
        """A page of the GX Data Docs site, given by its path inside the site (``validations/.../x.html``)."""
        return f"{self.url}{GX_PREFIX}{quote(page.lstrip('/'), safe='/')}"

    def dbt_url(self, unique_id: str | None = None) -> str:
        """The dbt docs, or one node's page in them (``model.pulse.fct_sessions``)."""
        return f"{self.url}{DBT_PREFIX}" + (f"#!/{unique_id.split('.', 1)[0]}/{unique_id}" if unique_id else "")


def docs_address(environ: Mapping[str, str] | None = None) -> DocsAddress:
    """The setting ``docs_url`` (``PULSE_DOCS_URL``, settings.toml; default ``http://127.0.0.1:3001``) through
    the settings door (``environ``: default the process environment), which checks it is ``http://HOST:PORT``.
    Raises DocsUrlError naming where it was set and the value when it is not."""
    from pulse.core.settings import SettingsError, group_settings

    try:
        settings = group_settings(["docs_url"], environ)
    except SettingsError as exc:
        raise DocsUrlError(str(exc)) from None
    parts = urlsplit(settings.docs_url.strip())
    assert parts.hostname is not None and parts.port is not None  # the door checked it
    return DocsAddress(host=parts.hostname, port=parts.port)


# ------------------------------------------------------------------------------------------------- the home page


@dataclass(frozen=True)
class ValidationPage:
    suite: str
    run: str
    validated_at: datetime  # the page's modification time (UTC)
    page: str  # path inside the GX site


def validation_pages(gx_site: Path, limit: int = HOME_VALIDATIONS_LIMIT) -> list[ValidationPage]:
    """The newest validation pages of the GX site (``validations/<suite>/<run>/<time>/<batch>.html``)."""
    root = gx_site / "validations"
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("*/*/*/*.html"):
        try:
            mtime = path.stat().st_mtime
        except OSError:  # removed since the listing
            continue
        relative = path.relative_to(gx_site)
        found.append(
            ValidationPage(
                suite=relative.parts[1],
                run=relative.parts[2],
                validated_at=datetime.fromtimestamp(mtime, UTC),
                page=relative.as_posix(),
            )
        )
    found.sort(key=lambda p: (p.validated_at, p.page), reverse=True)
    return found[:limit]


def render_home(gx_site: Path, dbt_site: Path) -> str:
    """The docs home: the dbt docs and the latest validation pages, as plain HTML (no script, no CDN)."""
    pages = validation_pages(gx_site)
    if (dbt_site / "index.html").is_file():
        dbt = f'<p><a href="{DBT_PREFIX}">dbt docs</a>: the models, their columns, tests and lineage.</p>'
    else:
        dbt = (
            "<p>dbt docs: none yet. They are generated at the end of a run's dbt step (<code>pulse run</code> / "
            f"<code>pulse materialize</code>) into <code>{html.escape(str(dbt_site))}</code>.</p>"
        )
    if pages:
        rows = "\n".join(
            f"<tr><td>{html.escape(p.suite)}</td><td>{html.escape(p.run)}</td>"
            f"<td>{p.validated_at:%Y-%m-%d %H:%M:%S} UTC</td>"
            f'<td><a href="{GX_PREFIX}{quote(p.page, safe="/")}">validation</a></td></tr>'
            for p in pages
        )
        gx = (
            f"<p>The newest {len(pages)} validation pages (GX's own index: "
            f'<a href="{GX_PREFIX}index.html">{GX_PREFIX}index.html</a>; its tables need the CDN scripts '
            "it links, so they stay empty offline).</p>\n"
            "<table><thead><tr><th>suite</th><th>run</th><th>validated</th><th></th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody></table>"
        )
    else:
        gx = (
            "<p>No validation yet: the Great Expectations checks write their Data Docs during a run, into "
            f"<code>{html.escape(str(gx_site))}</code>.</p>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pulse docs</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}</style></head>
<body><h1>pulse docs</h1>
<h2>dbt</h2>
{dbt}
<h2>Great Expectations Data Docs</h2>
{gx}
</body></html>
"""


# ------------------------------------------------------------------------------------------------- the server


class _Handler(SimpleHTTPRequestHandler):
    server: _DocsHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the Dagster UI's terminal is not the place for a line per file

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # index pages change run after run
        super().end_headers()

    def do_GET(self) -> None:
        if self._home():
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._home(body=False):
            return
        super().do_HEAD()

    def _home(self, body: bool = True) -> bool:
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            return False
        content = render_home(self.server.gx_site, self.server.dbt_site).encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body:
            self.wfile.write(content)
        return True

    def _site(self, path: str) -> tuple[Path, str] | None:
        """The site a request path is in, and the path inside it; None: neither /gx/ nor /dbt/."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, root in ((GX_PREFIX, self.server.gx_site), (DBT_PREFIX, self.server.dbt_site)):
            if path == prefix.rstrip("/"):
                return root, "/"  # the site's root: the base class redirects /gx to /gx/
            if path.startswith(prefix):
                return root, "/" + path[len(prefix) :]
        return None

    def send_head(self):  # noqa: ANN201 - the base class returns a file or None
        if self._site(self.path) is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return super().send_head()

    def translate_path(self, path: str) -> str:
        site = self._site(path)
        if site is None:  # send_head answered 404 already; never a file outside the sites
            raise ValueError(f"not a docs path: {path}")
        root, inside = site
        self.directory = str(root)
        return super().translate_path(inside)  # drops "..", "." and empty parts

    def list_directory(self, path: str | os.PathLike[str]):  # noqa: ANN201 - the base class returns a file or None
        self.send_error(HTTPStatus.NOT_FOUND, "No index here")
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == HTTPStatus.NOT_FOUND:
            path = self.path.split("?", 1)[0]
            if path.startswith(DBT_PREFIX) and not (self.server.dbt_site / "index.html").is_file():
                explain = (
                    f"No dbt docs in {self.server.dbt_site} yet: they are generated at the end of a run's dbt "
                    "step (pulse run / pulse materialize)."
                )
            elif path.startswith(GX_PREFIX) and not self.server.gx_site.is_dir():
                explain = (
                    f"No Data Docs in {self.server.gx_site} yet: the Great Expectations checks write them "
                    "during a run (pulse run / pulse materialize)."
                )
            else:
                explain = explain or "The docs home is /: the dbt docs and the latest Data Docs pages."
        super().send_error(code, message, explain)


class _DocsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: DocsAddress, gx_site: Path, dbt_site: Path) -> None:
        self.gx_site = gx_site
        self.dbt_site = dbt_site
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.address_family = family
        super().__init__((address.host, address.port), _Handler)

    def handle_error(self, request: object, client_address: tuple) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # the browser went away mid-answer (a closed tab): nothing to say
            return
        print(f"docs server: {type(error).__name__} answering {client_address[0]}: {error}", file=sys.stderr)


class DocsServer:
    """Serves ``gx_site`` under /gx/ and ``dbt_site`` under /dbt/ at ``address``, in a daemon thread of this
    process (so it stops with it). ``start()`` binds (OSError when the port is taken), ``stop()`` closes.

        with DocsServer(address, gx_site, dbt_site):
            ...  # the UI runs
    """

    def __init__(self, address: DocsAddress, gx_site: Path, dbt_site: Path) -> None:
        self.address = address
        self.gx_site = Path(gx_site)
        self.dbt_site = Path(dbt_site)
        self._server: _DocsHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the address's, or the one the system picked for port 0 in tests)."""
        if self._server is None:
            return self.address.port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return DocsAddress(self.address.host, self.port).url

    def start(self) -> DocsServer:
        self._server = _DocsHTTPServer(self.address, self.gx_site, self.dbt_site)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pulse-docs-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> DocsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def docs_address_for_links(
    warn: Callable[[str], object], environ: Mapping[str, str] | None = None
) -> DocsAddress | None:
    """For code that writes links during a run: the address, or None after ``warn``-ing about an unusable
    PULSE_DOCS_URL (a run never fails over a link; it then writes file:// links or none)."""
    try:
        return docs_address(environ)
    except DocsUrlError as exc:
        warn(f"{exc}; the docs links of this run fall back to file:// paths")
        return None
