"""The viewer's web server: loopback only, a random token in every URL, a fixed table of routes.

Security model (``docs/security.md``): the server binds 127.0.0.1 on a free port and answers only
requests whose path starts with the session's token (``secrets.token_urlsafe``, 256 bits) and whose
``Host`` is that address (so a web page elsewhere cannot reach it through DNS rebinding). No part of a
request ever becomes a file path: the page's files are loaded into memory at start, and cubes are
addressed by their index in the :class:`~hsrecon.view.catalog.Catalog` built from the command line.
It is read-only: GET and HEAD, nothing that writes. Anything else is refused (403 for a wrong token
or host, 404 for an unknown route, 405 for other methods, 400 for a bad parameter).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs

import numpy as np

from hsrecon.view.catalog import Catalog, ImageRequest
from hsrecon.view.render import COLORMAPS, colormap_stops

__all__ = ["ViewerServer", "make_server"]

HOST = "127.0.0.1"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_INTEGER = re.compile(r"-?[0-9]{1,10}\Z")
_NUMBER = re.compile(r"-?[0-9.eE+-]{1,32}\Z")
_STATIC = {
    "static/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "static/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
    "": ("index.html", "text/html; charset=utf-8"),
}


class BadRequestError(ValueError):
    """A parameter the page should never send: answered 400 with the reason."""


def _page_files() -> dict[str, tuple[bytes, str]]:
    """Every file the page needs, read once into memory: route → (bytes, content type)."""
    assets = resources.files("hsrecon.view") / "static"
    files = {route: ((assets / name).read_bytes(), kind) for route, (name, kind) in _STATIC.items()}
    plotly_js = resources.files("plotly") / "package_data" / "plotly.min.js"
    files["static/plotly.min.js"] = (plotly_js.read_bytes(), "text/javascript; charset=utf-8")
    return files


class ViewerServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` that serves one catalog to holders of its token."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, catalog: Catalog, *, port: int = 0, token: str | None = None) -> None:
        self.catalog = catalog
        self.token = token or secrets.token_urlsafe(32)
        self.page_files = _page_files()
        super().__init__((HOST, port), _Handler)
        self.port = int(self.server_address[1])
        self.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/{self.token}/"

    def meta(self) -> dict[str, object]:
        from hsrecon import __version__

        return {
            "hsrecon_version": __version__,
            **self.catalog.describe(),
            "colormaps": {name: colormap_stops(name) for name in COLORMAPS},
        }

    def warm_up(self) -> threading.Thread:
        """Load colour-science (seconds) in the background, so the first sRGB image does not wait for it."""

        def load() -> None:
            from hsrecon.preview import cube_to_linear_srgb

            cube_to_linear_srgb(np.zeros((1, 1, 31)))

        thread = threading.Thread(target=load, name="hsrecon-view-warm-up", daemon=True)
        thread.start()
        return thread

    def start_in_thread(self) -> threading.Thread:
        """Serve from a background thread (tests, notebooks); ``shutdown()`` then ``server_close()`` stop it."""
        thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="hsrecon-view", daemon=True)
        thread.start()
        return thread


def make_server(catalog: Catalog, *, port: int = 0, token: str | None = None) -> ViewerServer:
    """A server for ``catalog`` on 127.0.0.1 (``port`` 0: a free one), not yet serving."""
    return ViewerServer(catalog, port=port, token=token)


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"
    server_version = "hsrecon-view"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is closed after this
    _head_only = False

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the terminal shows the URL and errors, not one line per request."""

    # --- methods ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def refuse_method(self) -> None:
        """Every other method (``do_POST`` …, set below the class): the viewer is read-only."""
        allow = {"Allow": "GET, HEAD"}
        self._send_json({"error": "read-only: GET and HEAD only"}, HTTPStatus.METHOD_NOT_ALLOWED, allow)

    # --- routing ------------------------------------------------------------------------------------

    def _answer(self, *, head: bool) -> None:
        """Answer one request. numpy's floating-point warnings (a cube with ±inf, a stretch of ±1e308) are
        off in this thread: a request never writes to the terminal, whatever it asks."""
        self._head_only = head
        with np.errstate(all="ignore"):
            self._route_and_answer()

    def _route_and_answer(self) -> None:
        try:
            route, query = self._route()
            if route is None:
                return
            if route in self.server.page_files:
                body, kind = self.server.page_files[route]
                self._send(body, kind, cache="private, max-age=3600")
            elif route in _API_ROUTES:
                getattr(self, _API_ROUTES[route])(query)
            else:
                self._send_json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        except BadRequestError as error:
            self._send_json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):  # the page gave up on the answer (a newer view)
            self.close_connection = True
        except Exception as error:  # a damaged file: one line on the page, never a traceback on the terminal
            text = (str(error) or type(error).__name__).strip().splitlines()[0]
            with contextlib.suppress(OSError):
                self._send_json({"error": text}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _route(self) -> tuple[str | None, dict[str, str]]:
        """The route after the token, and the query; or None after refusing the request."""
        host = self.headers.get("Host", "")
        if host not in self.server.allowed_hosts:
            self._send_json({"error": "forbidden"}, HTTPStatus.FORBIDDEN)
            return None, {}
        if not self.path.startswith("/"):
            self._send_json({"error": "bad request target"}, HTTPStatus.BAD_REQUEST)
            return None, {}
        path, _, query = self.path.partition("?")  # split by hand: never read as a URL with a host part
        _, token, route = [*path.split("/", 2), "", ""][:3]
        if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.server.token.encode()):
            self._send_json({"error": "forbidden"}, HTTPStatus.FORBIDDEN)
            return None, {}
        if path == f"/{token}":  # the URL without its final slash: relative links need it
            self._send(b"", "text/plain", status=HTTPStatus.MOVED_PERMANENTLY, extra={"Location": f"/{token}/"})
            return None, {}
        return route, _single_values(query)

    # --- API ----------------------------------------------------------------------------------------

    def _meta(self, query: dict[str, str]) -> None:
        self._send_json(self.server.meta())

    def _spectrum(self, query: dict[str, str]) -> None:
        entry = self._entry(query)
        x, y = _integer(query, "x"), _integer(query, "y")
        if not (0 <= x < entry.cube.width and 0 <= y < entry.cube.height):
            raise BadRequestError(f"pixel ({x}, {y}) outside the {entry.cube.width}×{entry.cube.height} image")
        self._send_json({"cube": _integer(query, "cube"), **entry.spectrum(x, y)})

    def _image(self, query: dict[str, str]) -> None:
        entry = self._entry(query)
        lo, hi = _optional_number(query, "lo"), _optional_number(query, "hi")
        if (lo is None) != (hi is None) or (lo is not None and hi is not None and not lo < hi):
            raise BadRequestError("lo and hi: both or neither, lo < hi")
        colormap = query.get("cmap", "viridis")
        if colormap not in COLORMAPS:
            raise BadRequestError(f"cmap: choose from {', '.join(COLORMAPS)}")
        request = ImageRequest(
            layer=query.get("layer", "srgb"),
            x0=_integer(query, "x0"),
            y0=_integer(query, "y0"),
            step=_integer(query, "step"),
            cols=_integer(query, "cols"),
            rows=_integer(query, "rows"),
            band=_integer(query, "band", 0),
            colormap=colormap,
            low_percent=_number(query, "plo", 2.0),
            high_percent=_number(query, "phi", 98.0),
            lo=lo,
            hi=hi,
        )
        try:
            entry.check(request)
        except ValueError as error:
            raise BadRequestError(str(error)) from None
        image = entry.render(request, self.server.catalog)
        extra = {} if image.lo is None else {"X-Hsrecon-Range": f"{image.lo!r} {image.hi!r}"}
        self._send(image.png, "image/png", extra=extra)

    def _scores(self, query: dict[str, str]) -> None:
        self._entry(query)
        self._send_json(self.server.catalog.scores(_integer(query, "cube")))

    def _progress(self, query: dict[str, str]) -> None:
        self._entry(query)
        self._send_json(self.server.catalog.progress(_integer(query, "cube")))

    def _entry(self, query: dict[str, str]):
        try:
            return self.server.catalog.entry(_integer(query, "cube"))
        except IndexError as error:
            raise BadRequestError(str(error)) from None

    # --- responses ----------------------------------------------------------------------------------

    def _send_json(self, payload: object, status: HTTPStatus = HTTPStatus.OK, extra: dict | None = None) -> None:
        body = json.dumps(payload, allow_nan=False).encode("utf-8")
        self._send(body, "application/json", status=status, extra=extra)

    def _send(
        self,
        body: bytes,
        kind: str,
        *,
        status: HTTPStatus = HTTPStatus.OK,
        cache: str = "no-store",
        extra: dict | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        if kind.startswith("text/html"):
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("X-Frame-Options", "DENY")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not self._head_only:
            self.wfile.write(body)


_API_ROUTES = {
    "api/meta": "_meta",
    "api/spectrum": "_spectrum",
    "api/image": "_image",
    "api/scores": "_scores",
    "api/progress": "_progress",
}
for _method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"):
    setattr(_Handler, f"do_{_method}", _Handler.refuse_method)


def _single_values(query: str) -> dict[str, str]:
    """The query's parameters, each given at most once (a repeated one is a bad request)."""
    values: dict[str, str] = {}
    try:
        fields = parse_qs(query, keep_blank_values=True, max_num_fields=32)
    except ValueError as error:  # more fields than any page request has
        raise BadRequestError(str(error)) from None
    for name, found in fields.items():
        if len(found) != 1:
            raise BadRequestError(f"{name}: given {len(found)} times")
        values[name] = found[0]
    return values


def _integer(query: dict[str, str], name: str, default: int | None = None) -> int:
    text = query.get(name)
    if text is None:
        if default is None:
            raise BadRequestError(f"{name}: missing")
        return default
    if not _INTEGER.match(text):
        raise BadRequestError(f"{name}: not an integer")
    return int(text)


def _number(query: dict[str, str], name: str, default: float) -> float:
    found = _optional_number(query, name)
    return default if found is None else found


def _optional_number(query: dict[str, str], name: str) -> float | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        value = float(text) if _NUMBER.match(text) else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadRequestError(f"{name}: not a finite number")
    return value
