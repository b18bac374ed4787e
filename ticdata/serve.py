"""An HTTP server for the synthetic world: renders each pair's JPEG from its URL, and misbehaves on
purpose under `/fail/<kind>/...` so a downloader meets the failures of the real web.

Routes (see `ticdata.synth.world` for the URL scheme; `?size=N` renders N x N pixels):

    /img/{seed}/{year}/{concept}/{instance}.jpg      200 image/jpeg, Last-Modified = the pair's
                                                     capture time (inside its year); every 3rd
                                                     instance carries EXIF DateTimeOriginal too
    /fail/404/...        404 Not Found
    /fail/500/...        500 Internal Server Error
    /fail/slow/...       the image, after `slow_seconds` (a client with a shorter timeout times out)
    /fail/truncated/...  Content-Length larger than the bytes sent, then the connection closes
    /fail/corrupt/...    200 image/jpeg with bytes that are no image
    /fail/redirect/...   302 to the matching /img/ URL (a success after one redirect)
    /fail/huge/...       a valid 12000 x 12000 JPEG of one flat colour (1.7 MB, 144 M pixels): a
                         decompression bomb for a downloader without a decoded-pixel cap
    /fail/noai/...       the image with `X-Robots-Tag: noai`

Anything else is 404. GET and HEAD are served; requests are logged at DEBUG level only.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import Counter
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ticdata.errors import UserError
from ticdata.synth.world import ImageRef, decode_url, instance_params, render

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
HUGE_SIDE = 12000  # pixels per side of the `huge` image: 144 M pixels, above PIL's 89.5 M bomb limit
CORRUPT_BYTES = 2048


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


@lru_cache(maxsize=1)
def huge_jpeg(side: int = HUGE_SIDE) -> bytes:
    """A baseline greyscale JPEG of side x side flat mid-grey pixels, built without decoding it.

    A small flat image is encoded by PIL (standard Huffman tables); each 8x8 block of a flat image
    is the same 6 bits (DC difference 0, end of block), so the scan of the big image is that
    pattern repeated, under the small image's header with its dimensions patched."""
    from PIL import Image

    if side % 16:
        raise ValueError(f"huge_jpeg: side={side}; must be a multiple of 16")
    buf = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buf, format="JPEG", quality=90, optimize=False)
    data = bytearray(buf.getvalue())
    pattern = b"\x28\xa2\x8a"  # four blocks of '00' (DC diff 0) + '1010' (EOB)
    pos, sof, scan = 2, None, None
    while pos < len(data):
        assert data[pos] == 0xFF, "unexpected JPEG layout"
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xC0:
            sof = pos
        if marker == 0xDA:
            scan = pos + 2 + length
            break
        pos += 2 + length
    assert sof is not None and scan is not None, "no SOF0/SOS in PIL's JPEG"
    assert bytes(data[scan:-2]) == pattern, "PIL's flat JPEG does not use the standard Huffman tables"
    data[sof + 5 : sof + 7] = side.to_bytes(2, "big")  # height
    data[sof + 7 : sof + 9] = side.to_bytes(2, "big")  # width
    blocks = (side // 8) ** 2
    return bytes(data[:scan]) + pattern * (blocks // 4) + b"\xff\xd9"


def corrupt_bytes(ref: ImageRef) -> bytes:
    """Deterministic bytes that no image decoder accepts."""
    import hashlib

    seed = f"corrupt:{ref.seed}:{ref.year}:{ref.concept}:{ref.instance}".encode()
    out = bytearray(b"\x00tic-corrupt\x00")
    block = seed
    while len(out) < CORRUPT_BYTES:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:CORRUPT_BYTES])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a downloader opens hundreds of connections at once; 5 (the default) drops them

    def __init__(self, address, slow_seconds: float):
        super().__init__(address, _Handler)
        self.slow_seconds = float(slow_seconds)
        self.stopping = threading.Event()
        self.counts: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()  # requests per URL path
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "tic-world/1"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    # --- responses ---
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None, head: bool = False,
              length: int | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _text(self, status: int, message: str, head: bool) -> None:
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8", head=head)

    def _image(self, ref: ImageRef, head: bool, extra: dict[str, str] | None = None) -> None:
        body = render(ref.seed, ref.year, ref.concept, ref.instance, ref.size)
        captured = instance_params(ref.seed, ref.year, ref.concept, ref.instance).captured
        headers = {"Last-Modified": http_date(captured), "Cache-Control": "public, max-age=31536000"} | (extra or {})
        self._send(200, body, "image/jpeg", headers, head)

    def _serve(self, head: bool) -> None:
        try:
            ref = decode_url(self.path)
            with self.server.lock:
                self.server.counts["unknown" if ref is None else ref.kind or "img"] += 1
                self.server.paths[self.path] += 1
            if ref is None:
                self._text(404, "not found", head)
            elif ref.kind is None:
                self._image(ref, head)
            else:
                self._fail(ref, head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away (e.g. it timed out on /fail/slow)

    def _fail(self, ref: ImageRef, head: bool) -> None:
        kind = ref.kind
        if kind == "404":
            self._text(404, "not found", head)
        elif kind == "500":
            self._text(500, "internal server error", head)
        elif kind == "slow":
            if self.server.stopping.wait(self.server.slow_seconds):
                self.close_connection = True
                return
            self._image(ref, head)
        elif kind == "truncated":
            body = render(ref.seed, ref.year, ref.concept, ref.instance, ref.size)
            self._send(200, body[: len(body) // 2], "image/jpeg", head=head, length=len(body))
            self.wfile.flush()
            self.close_connection = True
        elif kind == "corrupt":
            self._send(200, corrupt_bytes(ref), "image/jpeg", head=head)
        elif kind == "redirect":
            host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
            target = f"http://{host}{ref.image().path()}"
            self._send(302, b"", "text/plain; charset=utf-8", {"Location": target}, head)
        elif kind == "huge":
            self._send(200, huge_jpeg(), "image/jpeg", head=head)
        elif kind == "noai":
            self._image(ref, head, {"X-Robots-Tag": "noai"})
        else:  # pragma: no cover - decode_url only returns known kinds
            self._text(404, "not found", head)


class ImageServer:
    """The world's image server on a background thread, for tests and scripts.

        with ImageServer() as srv:           # binds 127.0.0.1 on a free port
            make_world(out, base_url=srv.url)
            ...

    `counts` tallies requests by route (`img`, a failure kind, or `unknown`), `paths` by URL path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, slow_seconds: float = 5.0):
        self.host, self.port, self.slow_seconds = host, int(port), float(slow_seconds)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ImageServer":
        if self._server is not None:
            return self
        self._server = _bind(self.host, self.port, self.slow_seconds)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"tic-image-server-{self._server.server_address[1]}", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ImageServer is not started; use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    @property
    def counts(self) -> Counter:
        if self._server is None:
            return Counter()
        with self._server.lock:
            return Counter(self._server.counts)

    @property
    def paths(self) -> Counter:
        if self._server is None:
            return Counter()
        with self._server.lock:
            return Counter(self._server.paths)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stopping.set()  # wakes requests waiting on /fail/slow
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "ImageServer":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False


def _bind(host: str, port: int, slow_seconds: float) -> _Server:
    try:
        return _Server((host, port), slow_seconds)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or stop the process using it")


def serve_forever(host: str = "127.0.0.1", port: int = DEFAULT_PORT, slow_seconds: float = 5.0) -> None:
    """Serve the synthetic world's images on http://HOST:PORT until interrupted (`tic serve-images`).

    Any world (any seed) is served: a URL names its seed, year, concept and instance, and the image
    is rendered from them. Binds only to `host` (loopback by default). Ctrl-C stops it."""
    server = _bind(host, int(port), slow_seconds)
    h, p = server.server_address[:2]
    log.info("serving the synthetic world's images on http://%s:%d (Ctrl-C stops)", h, p)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
        log.info("image server stopped after %d requests", sum(server.counts.values()))
