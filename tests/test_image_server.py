"""The world's HTTP image server, route by route, with urllib against 127.0.0.1."""

from __future__ import annotations

import http.client
import io
import socket
import time
import urllib.error
import urllib.request
import warnings
from email.utils import parsedate_to_datetime

import pytest
from PIL import Image, UnidentifiedImageError

from ticdata.serve import HUGE_SIDE, ImageServer, serve_forever
from ticdata.synth import world as W

SEED = 5
SLOW = 1.5
PIXEL_CAP = 100_000_000  # a downloader's decoded-pixel cap (PIL's own bomb limit is 89.5 M)


@pytest.fixture(scope="module")
def srv():
    with ImageServer(slow_seconds=SLOW) as s:
        yield s


def _get(url: str, timeout: float = 5.0, method: str = "GET"):
    return urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout)


def _status(url: str) -> int:
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(url)
    return e.value.code


def test_binds_loopback_and_is_quiet(srv, capsys):
    assert srv.url.startswith("http://127.0.0.1:")
    with _get(f"{srv.url}/img/{SEED}/2015/c1/1.jpg") as r:
        r.read()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_image_route(srv):
    with _get(f"{srv.url}/img/{SEED}/2019/c3/4.jpg") as r:
        body = r.read()
        assert r.status == 200
        assert r.headers["Content-Type"] == "image/jpeg"
        assert int(r.headers["Content-Length"]) == len(body)
        modified = parsedate_to_datetime(r.headers["Last-Modified"])
    assert body == W.render(SEED, 2019, 3, 4)
    assert modified.year == 2019
    assert modified == W.instance_params(SEED, 2019, 3, 4).captured
    im = Image.open(io.BytesIO(body))
    assert im.size == (64, 64) and im.format == "JPEG"
    with _get(f"{srv.url}/img/{SEED}/2019/c3/4.jpg?size=32") as r:
        assert Image.open(io.BytesIO(r.read())).size == (32, 32)
    with _get(f"{srv.url}/img/{SEED}/2019/c3/4.jpg", method="HEAD") as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) == len(body) and r.read() == b""


def test_last_modified_in_the_year_and_exif_on_every_third(srv):
    for year, instance in ((2014, 0), (2016, 1), (2020, 3), (2022, 4), (2017, 6)):
        with _get(f"{srv.url}/img/{SEED}/{year}/c2/{instance}.jpg") as r:
            assert parsedate_to_datetime(r.headers["Last-Modified"]).year == year
            exif = Image.open(io.BytesIO(r.read())).getexif().get_ifd(0x8769)
        if instance % 3 == 0:
            assert exif[0x9003].startswith(f"{year}:"), exif
        else:
            assert 0x9003 not in exif


def test_not_found_and_server_error(srv):
    for path in ("/", "/favicon.ico", f"/img/{SEED}/2013/c1/1.jpg", f"/img/{SEED}/2019/c1/1.png",
                 f"/img/{SEED}/2019/c99/1.jpg", f"/fail/bogus/{SEED}/2019/c1/1.jpg", f"/fail/404/{SEED}/2019/c1/1.jpg"):  # fmt: skip
        assert _status(srv.url + path) == 404, path
    assert _status(f"{srv.url}/fail/500/{SEED}/2019/c1/1.jpg") == 500


def test_slow_times_out_a_short_client(srv):
    t0 = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)) as e:
        _get(f"{srv.url}/fail/slow/{SEED}/2019/c1/1.jpg", timeout=0.3).read()
    assert time.monotonic() - t0 < SLOW
    if isinstance(e.value, urllib.error.URLError):
        assert isinstance(e.value.reason, (TimeoutError, socket.timeout))
    with _get(f"{srv.url}/fail/slow/{SEED}/2019/c1/1.jpg", timeout=SLOW + 5) as r:  # a patient client gets it
        assert r.read() == W.render(SEED, 2019, 1, 1)


def test_truncated_body(srv):
    with _get(f"{srv.url}/fail/truncated/{SEED}/2019/c1/2.jpg") as r:
        declared = int(r.headers["Content-Length"])
        with pytest.raises(http.client.IncompleteRead) as e:
            r.read()
    assert declared == len(W.render(SEED, 2019, 1, 2))
    assert 0 < len(e.value.partial) < declared


def test_corrupt_is_no_image(srv):
    with _get(f"{srv.url}/fail/corrupt/{SEED}/2019/c1/2.jpg") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        body = r.read()
    assert len(body) > 0
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(body))


def test_redirect_lands_on_the_image(srv):
    with _get(f"{srv.url}/fail/redirect/{SEED}/2018/c6/9.jpg?size=48") as r:
        assert r.status == 200
        assert r.url == f"{srv.url}/img/{SEED}/2018/c6/9.jpg?size=48"
        assert r.read() == W.render(SEED, 2018, 6, 9, 48)


def test_huge_exceeds_a_pixel_cap_but_is_small_and_valid(srv):
    with _get(f"{srv.url}/fail/huge/{SEED}/2019/c1/2.jpg") as r:
        assert r.headers["Content-Type"] == "image/jpeg"
        body = r.read()
    assert len(body) < 4_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(io.BytesIO(body))  # reads the header only
        assert im.size == (HUGE_SIDE, HUGE_SIDE)
        assert im.width * im.height > PIXEL_CAP
        im.draft("L", (im.width // 8, im.height // 8))  # decode at 1/8 scale: the scan is complete
        im.load()
        assert im.size == (HUGE_SIDE // 8, HUGE_SIDE // 8) and im.getextrema() == (128, 128)


def test_noai_header(srv):
    with _get(f"{srv.url}/fail/noai/{SEED}/2021/c0/3.jpg") as r:
        assert r.headers["X-Robots-Tag"] == "noai"
        assert r.read() == W.render(SEED, 2021, 0, 3)
    with _get(f"{srv.url}/img/{SEED}/2021/c0/3.jpg") as r:
        assert r.headers.get("X-Robots-Tag") is None


def test_counts_and_prompt_stop_with_a_request_in_flight():
    import threading

    s = ImageServer(slow_seconds=30).start()
    url = s.url
    done = threading.Event()

    def slow_client():
        try:
            _get(f"{url}/fail/slow/{SEED}/2019/c1/1.jpg", timeout=40).read()
        except Exception:
            pass
        done.set()

    threading.Thread(target=slow_client, daemon=True).start()
    with _get(f"{url}/img/{SEED}/2019/c1/1.jpg") as r:
        r.read()
    time.sleep(0.2)
    assert s.counts["img"] == 1 and s.counts["slow"] == 1
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 5
    assert done.wait(5)
    with pytest.raises(urllib.error.URLError):
        _get(f"{url}/img/{SEED}/2019/c1/1.jpg", timeout=2)


def test_serve_forever_refuses_a_busy_port(srv):
    from ticdata.errors import UserError

    port = int(srv.url.rsplit(":", 1)[1])
    with pytest.raises(UserError, match="cannot listen"):
        serve_forever("127.0.0.1", port)
