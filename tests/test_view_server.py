"""hsrecon.view.server over real HTTP (no browser): loopback only, the token and the Host are required,
no request path reaches the filesystem, read-only, bad parameters are 400s; the API's answers are the cube's."""

from __future__ import annotations

import http.client
import io
import json

import numpy as np
import pytest
from PIL import Image

from hsrecon.io import open_cube_writer
from hsrecon.view.catalog import build_catalog
from hsrecon.view.server import make_server

WAVELENGTHS = np.arange(400.0, 701.0, 10.0)


@pytest.fixture()
def cube(rng) -> np.ndarray:
    return (rng.random((24, 32, 31), dtype=np.float32) * 0.9 + 0.05).astype(np.float32)


@pytest.fixture()
def server(tmp_path, cube):
    with open_cube_writer(tmp_path / "scene", "envi", height=24, width=32, wavelengths_nm=WAVELENGTHS) as writer:
        writer.write_rows(0, cube)
    (tmp_path / "secret.txt").write_text("do not serve me")
    catalog, _ = build_catalog([tmp_path / "scene.hdr"])
    server = make_server(catalog)
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()
    catalog.close()


def request(server, path: str, *, method: str = "GET", host: str | None = None) -> tuple[int, dict, bytes]:
    """One raw request: the path is sent exactly as given (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host != "":  # "" sends no Host header at all
            connection.putheader("Host", f"127.0.0.1:{server.port}" if host is None else host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_binds_loopback_on_a_free_port_with_a_long_random_token(server, cube):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}/{server.token}/"
    assert len(server.token) >= 43  # 32 random bytes
    catalog, _ = build_catalog([server.catalog.entries[0].cube.path])
    other = make_server(catalog)
    assert other.token != server.token and other.port != server.port
    other.server_close()
    catalog.close()


def test_the_page_and_its_scripts_are_served_under_the_token(server):
    status, headers, body = request(server, f"/{server.token}/")
    assert status == 200 and b"hsrecon view" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name in ("viewer.js", "viewer.css", "plotly.min.js"):
        status, _, body = request(server, f"/{server.token}/static/{name}")
        assert status == 200 and len(body) > 1000
    status, headers, _ = request(server, f"/{server.token}")
    assert status == 301 and headers["Location"] == f"/{server.token}/"


def test_requests_without_the_token_are_refused(server):
    token = server.token
    paths = ["/", "/static/viewer.js", "/api/meta", f"/{token[:-1]}/api/meta", f"/{token}x/api/meta"]
    paths += [f"/x{token}/", "/favicon.ico", f"/api/meta?token={token}", f"/static/{token}/api/meta"]
    for path in paths:
        status, _, body = request(server, path)
        assert status == 403, path
        assert b"forbidden" in body


def test_no_request_path_reaches_the_filesystem(server, tmp_path):
    token = server.token
    paths = [
        f"/{token}/../secret.txt",
        f"/{token}/static/../../secret.txt",
        f"/{token}/static/..%2f..%2fsecret.txt",
        f"/{token}/{tmp_path}/secret.txt",
        f"/{token}/{tmp_path}/scene.hdr",
        f"/{token}/scene.img",
        f"/{token}/static/",
        f"/{token}/static/index.html",
        f"/{token}/static/viewer.js/../../../etc/passwd",
        f"/{token}/api",
        f"/{token}/api/meta/../../secret.txt",
        f"/{token}/%2e%2e/secret.txt",
        f"/{token}/api/image?file=/etc/passwd",
    ]
    for path in paths:
        status, _, body = request(server, path)
        assert status in (400, 404), path
        assert b"do not serve me" not in body and b"root:" not in body
    status, _, body = request(server, f"/{token}/api/meta")
    assert status == 200 and json.loads(body)["cubes"][0]["name"] == "scene.hdr"
    assert str(tmp_path) not in body.decode()  # the page learns file names, never where they are


def test_other_hosts_are_refused_against_dns_rebinding(server):
    for host in ("evil.example", f"evil.example:{server.port}", f"127.0.0.1:{server.port + 1}", ""):
        status, _, _ = request(server, f"/{server.token}/api/meta", host=host)
        assert status == 403, host
    assert request(server, f"/{server.token}/api/meta", host=f"localhost:{server.port}")[0] == 200


def test_read_only_every_other_method_is_refused(server):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = request(server, f"/{server.token}/api/meta", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    status, headers, body = request(server, f"/{server.token}/api/meta", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_spectrum_is_the_cubes_pixel_exactly(server, cube):
    status, headers, body = request(server, f"/{server.token}/api/spectrum?cube=0&x=31&y=5")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    answer = json.loads(body)
    assert (answer["x"], answer["y"]) == (31, 5)
    assert np.array_equal(np.asarray(answer["values"], dtype=np.float32), cube[5, 31])
    assert answer["values"] == [float(v) for v in cube[5, 31]]


def test_band_image_is_the_bands_values(server, cube):
    query = "cube=0&layer=band&band=9&cmap=gray&plo=0&phi=100&x0=0&y0=0&step=1&cols=32&rows=24"
    status, headers, body = request(server, f"/{server.token}/api/image?{query}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    band = cube[..., 9].astype(np.float64)
    lo, hi = (float(v) for v in headers["X-Hsrecon-Range"].split())
    assert (lo, hi) == (band.min(), band.max())
    pixels = np.asarray(Image.open(io.BytesIO(body)))
    np.testing.assert_array_equal(pixels[..., 0], np.round((band - lo) / (hi - lo) * 255))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("api/spectrum?cube=0&x=32&y=0", "outside"),
        ("api/spectrum?cube=0&x=1e3&y=0", "x: not an integer"),
        ("api/spectrum?cube=0&x=1&x=2&y=0", "x: given 2 times"),
        ("api/spectrum?cube=3&x=1&y=0", "cube 3"),
        ("api/spectrum?cube=0&y=0", "x: missing"),
        ("api/image?cube=0&layer=srgb&x0=0&y0=0&step=1&cols=5000&rows=5000", "at most"),
        ("api/image?cube=0&layer=band&x0=0&y0=0&step=1&cols=3&rows=3&cmap=jet", "cmap"),
        ("api/image?cube=0&layer=band&x0=0&y0=0&step=1&cols=3&rows=3&lo=nan&hi=1", "lo: not a finite number"),
        ("api/image?cube=0&layer=band&x0=0&y0=0&step=1&cols=3&rows=3&lo=2&hi=1", "lo < hi"),
        ("api/image?cube=0&layer=mrae&x0=0&y0=0&step=1&cols=3&rows=3", "no ground truth"),
        ("api/image?cube=0&layer=srgb&x0=30&y0=0&step=1&cols=3&rows=3", "outside"),
    ],
)
def test_bad_parameters_are_400_with_the_reason(server, query, message):
    status, _, body = request(server, f"/{server.token}/{query}")
    assert status == 400
    assert message in json.loads(body)["error"]


def test_scores_of_a_cube_without_truth_say_so(server):
    status, _, body = request(server, f"/{server.token}/api/scores?cube=0")
    assert status == 200 and json.loads(body) == {"state": "none"}


def test_progress_says_when_the_overview_is_ready(server):
    status, _, body = request(server, f"/{server.token}/api/progress?cube=0")
    assert status == 200 and json.loads(body)["ready"] is False
    server.catalog.prefetch(0)
    server.catalog._prefetcher.shutdown(wait=True)  # the background read has finished: no clock involved
    status, _, body = request(server, f"/{server.token}/api/progress?cube=0")
    assert json.loads(body) == {"ready": True, "done": 24, "rows": 24}
    assert request(server, f"/{server.token}/api/progress?cube=1")[0] == 400
