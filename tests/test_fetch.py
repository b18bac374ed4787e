"""ticdata.fetch: the address policy (a pure function), one resolution per connection (DNS
rebinding), the whole-fetch deadline and the pixel cap read from headers.

No packet leaves 127.0.0.0/8: names are resolved by a stub (`resolver`), and connections to the
"public" addresses the stub hands out are either refused before connecting or carried to a server
on 127.0.0.1 by a stubbed `socket.create_connection` that records the address asked for."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import warnings

import pytest
from PIL import Image

from ticdata import fetch as F
from ticdata.fetch import (
    REFUSED,
    FetchPolicy,
    address_allowed,
    fetch,
    image_size_from_header,
)
from ticdata.serve import ImageServer, huge_jpeg
from ticdata.synth.world import image_url

PUBLIC = "93.184.216.34"  # a documentation-free global address: only ever a string or a stub's answer
REFUSED_ADDRESSES = [
    "100.100.100.200", "100.64.0.1", "100.127.255.254",  # carrier-grade NAT (cloud metadata lives here)
    "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "127.0.0.1", "127.9.9.9",
    "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "198.18.0.1",
    "192.0.2.1", "192.0.0.8",
    "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%lo", "ff02::1", "ff0e::1", "2001:db8::1",
    "::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:100.100.100.200", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
    "::10.0.0.1", "2002:a00:1::1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1",
]  # fmt: skip
ALLOWED_ADDRESSES = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:1.1.1.1", "64:ff9b::101:101"]  # fmt: skip


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_non_global_addresses_are_refused(address):
    assert not address_allowed(address)


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_global_addresses_are_allowed(address):
    assert address_allowed(address)


# ----------------------------------------------------------------------------------------------
# Stubs: a resolver for *.test names, and a create_connection that carries every connection to
# 127.0.0.1 while recording the address it was asked for.


@pytest.fixture()
def resolver(monkeypatch):
    """`names[host] = [addr, ...]` (or a callable returning them); lookups are counted per name."""
    real = socket.getaddrinfo
    names: dict = {}
    calls: dict[str, int] = {}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in names:  # numeric hosts only: never a DNS query
            return real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        calls[host] = calls.get(host, 0) + 1
        answer = names[host]() if callable(names[host]) else names[host]
        out = []
        for a in answer:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            out.append((fam, socket.SOCK_STREAM, 6, "", (a, port) if fam == socket.AF_INET else (a, port, 0, 0)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names, calls


@pytest.fixture()
def connections(monkeypatch):
    """Every address create_connection was asked for; the socket really goes to 127.0.0.1."""
    real = socket.create_connection
    asked: list[tuple] = []

    def create_connection(address, timeout=None, source_address=None, **kw):
        asked.append(address[:2])
        return real(("127.0.0.1", address[1]), timeout)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return asked


@pytest.fixture()
def server():
    with ImageServer(slow_seconds=3.0) as s:
        yield s


def _port(srv) -> int:
    return int(srv.url.rsplit(":", 1)[1])


@pytest.mark.parametrize("forbidden", ["100.100.100.200", "10.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "fd00::1", "0.0.0.0"])
def test_a_name_resolving_to_a_forbidden_address_is_refused_before_connecting(forbidden, resolver, connections, server):
    names, calls = resolver
    names["metadata.test"] = [forbidden]
    url = image_url(f"http://metadata.test:{_port(server)}", 0, 2019, 0, 1)
    got = fetch(url, 2.0, FetchPolicy(), None, None)
    assert got.data is None and got.error.startswith(REFUSED), got.error
    assert forbidden in got.error and "--allow-private-hosts" in got.error
    assert connections == [] and sum(server.counts.values()) == 0 and calls == {"metadata.test": 1}


def test_one_forbidden_address_among_global_ones_refuses_the_host(resolver, connections, server):
    names, _ = resolver
    names["mixed.test"] = [PUBLIC, "100.100.100.200"]
    got = fetch(image_url(f"http://mixed.test:{_port(server)}", 0, 2019, 0, 1), 2.0, FetchPolicy(), None, None)
    assert got.error.startswith(REFUSED) and connections == [] and sum(server.counts.values()) == 0


def test_literal_private_urls_are_refused_without_a_connection(resolver, connections, server):
    for host in ("127.0.0.1", "[::1]", "2130706433", "0x7f.1"):
        got = fetch(f"http://{host}:{_port(server)}/img/0/2019/c0/1.jpg", 2.0, FetchPolicy(), None, None)
        assert got.error.startswith(REFUSED), (host, got.error)
    assert connections == [] and sum(server.counts.values()) == 0


def test_the_checked_address_is_the_one_connected_to(resolver, connections, server):
    """DNS rebinding: the name answers a global address once, then a private one. The fetch
    resolves once, connects to the global address (carried to 127.0.0.1 by the stub) and sends the
    name in the Host header."""
    names, calls = resolver
    answers = iter([[PUBLIC]])
    names["rebind.test"] = lambda: next(answers, ["10.0.0.1"])
    url = image_url(f"http://rebind.test:{_port(server)}", 0, 2019, 0, 1)
    got = fetch(url, 2.0, FetchPolicy(), None, None)
    assert got.error is None and got.data[:3] == b"\xff\xd8\xff"
    assert connections == [(PUBLIC, _port(server))] and calls == {"rebind.test": 1}
    assert server.counts["img"] == 1


def test_a_redirect_is_resolved_and_checked_again(resolver, connections, server):
    """The server redirects to its own Host (the name); the second hop's answer is private: refused."""
    names, calls = resolver
    answers = iter([[PUBLIC]])
    names["rebind.test"] = lambda: next(answers, ["10.0.0.1"])
    url = image_url(f"http://rebind.test:{_port(server)}", 0, 2019, 0, 1, kind="redirect")
    got = fetch(url, 2.0, FetchPolicy(), None, None)
    assert got.error.startswith(REFUSED) and "10.0.0.1" in got.error, got.error
    assert connections == [(PUBLIC, _port(server))] and calls == {"rebind.test": 2}
    assert server.counts == {"redirect": 1}


def test_redirects_to_other_schemes_are_refused():
    assert "scheme 'file'" in fetch("file:///etc/passwd", 1.0, FetchPolicy(), None, None).error
    with pytest.raises(F.Refused):
        F._CheckedRedirects().redirect_request(None, None, 302, "", {}, "file:///etc/passwd")


def test_allow_private_hosts_allows_everything(server):
    got = fetch(image_url(server.url, 0, 2019, 0, 1), 2.0, FetchPolicy(allow_private_hosts=True), None, None)
    assert got.error is None and got.last_modified


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(resolver, monkeypatch):
    names, _ = resolver
    names["secure.test"] = [PUBLIC]
    asked, wrapped = [], []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        real = socket.create_connection

        def create_connection(address, timeout=None, source_address=None, **kw):
            asked.append(address[:2])
            return real(("127.0.0.1", port), timeout)

        class Context:  # records what TLS would be asked to verify, without a handshake
            verify_mode, check_hostname = F.ssl.CERT_REQUIRED, True

            def wrap_socket(self, sock, server_hostname=None, **kw):
                wrapped.append(server_hostname)
                return sock

        monkeypatch.setattr(socket, "create_connection", create_connection)
        guard = F._Guard(FetchPolicy(), F._Deadline(2.0, 8.0))
        conn = F.PinnedHTTPSConnection("secure.test", 443, guard=guard, context=Context(), timeout=2.0)
        conn.connect()
        conn.close()
    assert asked == [(PUBLIC, 443)] and wrapped == ["secure.test"]
    ctx = F.tls_context()
    assert ctx.verify_mode == F.ssl.CERT_REQUIRED and ctx.check_hostname


def test_https_fetch_goes_through_the_pinned_connection(resolver, monkeypatch):
    names, _ = resolver
    names["secure.test"], names["private.test"] = [PUBLIC], ["192.168.0.10"]
    asked = []

    def create_connection(address, timeout=None, source_address=None, **kw):
        asked.append(address[:2])
        raise ConnectionRefusedError(111, "Connection refused (stub)")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    got = fetch("https://secure.test/a.jpg", 1.0, FetchPolicy(), None, None)
    assert "Connection refused (stub)" in got.error and asked == [(PUBLIC, 443)]
    assert fetch("https://private.test/a.jpg", 1.0, FetchPolicy(), None, None).error.startswith(REFUSED)
    assert asked == [(PUBLIC, 443)]


def test_https_end_to_end_verifies_the_certificate_against_the_name(tmp_path, resolver, monkeypatch):
    """A TLS server on 127.0.0.1 with a certificate for secure.test: fetched by that name through the
    pinned address; the same address under another name fails the certificate check."""
    import shutil
    import ssl
    import subprocess
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=secure.test",
                    "-addext", "subjectAltName=DNS:secure.test"], check=True, capture_output=True)  # fmt: skip
    body = _encode("PNG", (5, 4))

    class H(BaseHTTPRequestHandler):
        def do_GET(h):
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        def log_message(h, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(cert))  # trusts only this certificate
    client_ctx.sslsocket_class = F._DeadlineSSLSocket
    monkeypatch.setattr(F, "tls_context", lambda: client_ctx)
    names, _ = resolver
    names["secure.test"] = names["wrong.test"] = ["127.0.0.1"]
    port = httpd.server_address[1]
    try:
        policy = FetchPolicy(allow_private_hosts=True)
        good = fetch(f"https://secure.test:{port}/x.png", 2.0, policy, None, None)
        bad = fetch(f"https://wrong.test:{port}/x.png", 2.0, policy, None, None)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert good.error is None and good.data == body
    assert bad.data is None and "certificate" in bad.error.lower(), bad.error


# ----------------------------------------------------------------------------------------------
# The whole-fetch deadline.


class DripServer:
    """Sends `head` then one byte of body every `every` seconds; stops by itself after `life` s."""

    def __init__(self, head: bytes, every: float = 0.2, life: float = 8.0, drip_head: bool = False):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.head, self.every, self.life, self.drip_head = head, every, life, drip_head
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        end = time.monotonic() + self.life
        conn = None
        while conn is None and time.monotonic() < end and not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
        if conn is None:
            return
        with conn:
            try:
                conn.recv(65536)
                if not self.drip_head:
                    conn.sendall(self.head)
                body = self.head if self.drip_head else b"x" * 10_000
                for b in body:
                    if self.stop.wait(self.every) or time.monotonic() > end:
                        return
                    conn.sendall(bytes([b]))
            except OSError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 10000\r\n\r\n"


@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "headers"])
def test_a_dripping_server_meets_the_deadline(drip_head):
    with DripServer(HEAD, drip_head=drip_head) as srv:
        started = time.monotonic()
        got = fetch(f"http://127.0.0.1:{srv.port}/x.jpg", 1.0, FetchPolicy(allow_private_hosts=True, deadline=1.5), None, None)
        took = time.monotonic() - started
    assert got.data is None and got.error.startswith("deadline:") and "1.5 s" in got.error, got.error
    assert 1.4 <= took < 2.5, took


def test_the_default_deadline_is_four_timeouts():
    with DripServer(HEAD, every=0.1) as srv:
        started = time.monotonic()
        got = fetch(f"http://127.0.0.1:{srv.port}/x.jpg", 0.3, FetchPolicy(allow_private_hosts=True), None, None)
        took = time.monotonic() - started
    assert got.error.startswith("deadline:") and "1.2 s" in got.error, got.error
    assert 1.1 <= took < 2.2, took
    with pytest.raises(ValueError, match="deadline"):
        FetchPolicy(deadline=0)


def test_a_slow_but_steady_fetch_within_the_deadline_succeeds(server):
    got = fetch(image_url(server.url, 0, 2019, 0, 1), 2.0, FetchPolicy(allow_private_hosts=True, deadline=5.0), None, None)
    assert got.error is None


# ----------------------------------------------------------------------------------------------
# Sizes from headers; the pixel cap; nothing without a readable size reaches a decoder.


def _encode(fmt: str, size=(37, 23), mode="RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "red" if mode != "P" else 3).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,mode,kw", [
    ("JPEG", "RGB", {}), ("JPEG", "RGB", {"progressive": True}), ("JPEG", "L", {}),
    ("JPEG", "RGB", {"exif": b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"}),
    ("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "P", {}), ("GIF", "P", {}), ("BMP", "RGB", {}),
    ("WEBP", "RGB", {"lossless": False}), ("WEBP", "RGB", {"lossless": True}), ("WEBP", "RGBA", {"lossless": False}),
])  # fmt: skip
def test_sizes_of_the_web_formats_are_read_from_headers(fmt, mode, kw):
    for size in ((37, 23), (1, 1), (640, 3)):
        assert image_size_from_header(_encode(fmt, size, mode, **kw)) == size, (fmt, kw, size)


def test_size_reading_never_uses_a_decoder(monkeypatch):
    def no(*a, **k):
        raise AssertionError("a decoder was called")

    monkeypatch.setattr(Image, "open", no)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning (or any other) either
        assert image_size_from_header(huge_jpeg()) == (12000, 12000)


def test_special_headers():
    os2_bmp = b"BM" + b"\x00" * 12 + struct.pack("<IHHHH", 12, 9000, 7000, 1, 24)
    assert image_size_from_header(os2_bmp) == (9000, 7000)
    top_down_bmp = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 300, -200)
    assert image_size_from_header(top_down_bmp) == (300, 200)
    # a GIF whose first frame lies outside its 10x10 logical screen: the larger extent counts
    gif = b"GIF89a" + struct.pack("<HH", 10, 10) + b"\x00\x00\x00" + b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    gif += b"\x2c" + struct.pack("<HHHH", 5, 0, 20000, 30000) + b"\x00"
    assert image_size_from_header(gif) == (20005, 30000)
    # a JPEG whose EXIF segment embeds a small thumbnail's frame header: the outer frame counts
    big = huge_jpeg(32)
    app1 = b"Exif\x00\x00" + _encode("JPEG", (8, 8))
    with_thumb = big[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + big[2:]
    assert image_size_from_header(with_thumb) == (32, 32)


@pytest.mark.parametrize("data", [
    b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8000 +X 8000\n" + b"\x00" * 64,  # OpenCV decodes this
    b"#?RGBE\n\n-Y 8000 +X 8000\n",
    b"P6\n8000 8000\n255\n", b"PF\n8000 8000\n-1.0\n", b"II*\x00\x08\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08",
    b"\x76\x2f\x31\x01" + b"\x00" * 60, b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\x59\xa6\x6a\x95" + b"\x00" * 28,
    bytes(range(256)) * 8, b"", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n",
    b"GIF89a\x0a\x00\x0a\x00\x00\x00\x00;", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM\x00",
])  # fmt: skip
def test_unreadable_sizes_are_none(data):
    assert image_size_from_header(data) is None


class _BytesHandler:
    """A one-route server on 127.0.0.1 answering every GET with `body`."""

    def __init__(self, body: bytes):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class H(BaseHTTPRequestHandler):
            def do_GET(h):
                h.send_response(200)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            def log_message(h, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/x"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_image_of_unreadable_size_is_refused_not_decoded():
    hdr = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8000 +X 8000\n" + b"\x02\x02\x1f\x40" * 64
    with _BytesHandler(hdr) as url:
        got = fetch(url, 2.0, FetchPolicy(allow_private_hosts=True), None, None)
    assert got.data is None and got.error.startswith(REFUSED) and "cannot read the image size before decoding" in got.error


def test_the_pixel_cap_and_the_corrupt_route(server):
    policy = FetchPolicy(allow_private_hosts=True, max_pixels=50_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = fetch(image_url(server.url, 0, 2019, 0, 1, kind="huge"), 5.0, policy, None, None)
    assert huge.error == f"{REFUSED} 12000x12000 pixels, over the cap of 50000000"
    corrupt = fetch(image_url(server.url, 0, 2019, 0, 1, kind="corrupt"), 2.0, policy, None, None)
    assert corrupt.error.startswith(REFUSED) and "cannot read the image size" in corrupt.error
    small = fetch(image_url(server.url, 0, 2019, 0, 1), 2.0, FetchPolicy(allow_private_hosts=True, max_pixels=100), None, None)
    assert "pixels, over the cap of 100" in small.error


def test_failures_keep_their_messages(server):
    policy = FetchPolicy(allow_private_hosts=True)
    assert "timed out" in fetch(image_url(server.url, 0, 2019, 0, 1, kind="slow"), 0.5, policy, None, None).error
    assert "incomplete read" in fetch(image_url(server.url, 0, 2019, 0, 1, kind="truncated"), 2.0, policy, None, None).error
    assert "404" in fetch(image_url(server.url, 0, 2019, 0, 1, kind="404"), 2.0, policy, None, None).error
    noai = fetch(image_url(server.url, 0, 2019, 0, 1, kind="noai"), 2.0, policy, {"noai"}, None)
    assert noai.error.startswith(REFUSED) and "X-Robots-Tag" in noai.error
    big = fetch(image_url(server.url, 0, 2019, 0, 1), 2.0, FetchPolicy(allow_private_hosts=True, max_bytes=100), None, None)
    assert big.error == f"{REFUSED} more than 100 bytes"
