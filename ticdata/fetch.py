"""Safe HTTP fetching of one image, in img2dataset's `download_image` contract.

img2dataset's own fetch follows redirects anywhere, reads any number of bytes and hands the
bytes to a decoder that allocates the full pixel array before checking its area. This fetch:

- resolves each host once (also after each redirect), refuses it unless every address is global
  (`ipaddress`' `is_global`: no private, loopback, link-local, carrier-grade NAT 100.64.0.0/10,
  unique-local, multicast or reserved address, nor an IPv6 form embedding one), then connects to
  the address it checked (no DNS rebinding); HTTPS verifies the certificate against the host name.
  `--allow-private-hosts` allows everything (tests and the embedded demo). No proxies;
- gives the whole fetch a deadline (`FetchPolicy.deadline`, default 4 x the per-read timeout), so
  a server that drips bytes cannot hold a worker forever;
- stops reading past `max_bytes`, and parses the image header itself (JPEG, PNG, GIF, WebP, BMP;
  no decoder) to refuse images over `max_pixels`; bytes whose size it cannot read are refused,
  never handed to a decoder;
- honours X-Robots-Tag directives exactly as img2dataset does;
- keeps the HTTP Last-Modified header as timestamp evidence for the audit.

Refusals are returned as error messages starting with "refused:", so the downloader can tell a
policy decision from a failure.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import struct
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

REFUSED = "refused:"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) tic/0.1 (+https://github.com/tic-clip/tic; compatible; img2dataset)"
DEADLINE_FACTOR = 4.0  # the whole fetch may take this many times the per-read timeout, unless set


@dataclass(frozen=True)
class FetchPolicy:
    allow_private_hosts: bool = False
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # 40 MP, e.g. 8000 x 5000
    deadline: float | None = None  # seconds for the whole fetch (redirects included); None: 4 x timeout

    def __post_init__(self) -> None:
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError(f"FetchPolicy.deadline={self.deadline}: must be a positive number of seconds")


class Refused(Exception):
    """A policy refusal: the message says which rule and how to change it."""


# ----------------------------------------------------------------------------------------------
# Addresses.

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IETF = ipaddress.IPv4Network("192.0.0.0/24")  # not global but .9 and .10; Python < 3.13 lists only parts


def address_allowed(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True if `address` is a global unicast address (what a fetch may connect to by default).

    IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) must also carry a global one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None or ip in _NAT64:  # DNS64 answers on IPv6-only networks
            return address_allowed(ip.ipv4_mapped or ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and not address_allowed(ip.sixtofour):
            return False
    if ip in _IETF and int(ip) & 0xFF not in (9, 10):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_loopback or ip.is_link_local)


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (one lookup)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host}: {e}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise OSError(f"cannot resolve {host}: no IPv4 or IPv6 address")
    return addresses


def checked_addresses(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """Resolve `host` once and return its addresses, or raise Refused if any of them is not allowed."""
    addresses = _resolve(host, port)
    if not policy.allow_private_hosts:
        for a in addresses:
            if not address_allowed(a):
                raise Refused(f"{REFUSED} {host} resolves to a non-global address ({a}: private, loopback, link-local, "
                              "shared or reserved); pass --allow-private-hosts to fetch it")  # fmt: skip
    return addresses


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"{REFUSED} scheme {parts.scheme!r} (only http and https)")
    if not parts.hostname:
        raise Refused(f"{REFUSED} no host in url")


# ----------------------------------------------------------------------------------------------
# The whole-fetch deadline and connections pinned to the checked address.


class DeadlineExceeded(TimeoutError):
    pass


class _Deadline:
    def __init__(self, timeout: float, seconds: float):
        self.timeout, self.seconds = timeout, seconds
        self.end = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def message(self) -> str:
        return f"deadline: the fetch took over {self.seconds:g} s in all (the server sends too slowly)"

    def read_timeout(self) -> float:
        """The timeout for the next socket operation: the per-read timeout, or less near the deadline."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(self.message())
        return min(self.timeout, left)


class _DeadlineSocketMixin:
    deadline: _Deadline | None = None

    def recv_into(self, *args, **kw):  # what http.client's reads call, for plain and TLS sockets
        if self.deadline is not None:
            self.settimeout(self.deadline.read_timeout())
        return super().recv_into(*args, **kw)


class _DeadlineSocket(_DeadlineSocketMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineSocketMixin, ssl.SSLSocket):
    pass


class _Guard:
    """One fetch's policy and deadline, shared by the connections of its redirects."""

    def __init__(self, policy: FetchPolicy, deadline: _Deadline):
        self.policy, self.deadline = policy, deadline

    def open_socket(self, host: str, port: int, timeout, source_address=None) -> socket.socket:
        addresses = checked_addresses(host, port, self.policy)
        if not isinstance(timeout, (int, float)):
            timeout = self.deadline.timeout
        error: OSError | None = None
        for ip in addresses:  # every one was checked; try them in order, as create_connection would
            connect_timeout = min(timeout, self.deadline.read_timeout())
            try:
                s = socket.create_connection((ip, port), connect_timeout, source_address)
            except OSError as e:
                error = e
                continue
            sock = _DeadlineSocket(s.family, s.type, s.proto, fileno=s.detach())
            sock.settimeout(timeout)
            sock.deadline = self.deadline
            return sock
        raise error or OSError(f"cannot connect to {host}")


class _Pinned:
    def __init__(self, host, *args, guard: _Guard, **kw):
        super().__init__(host, *args, **kw)
        self._guard = guard
        self._create_connection = lambda address, timeout, source=None: guard.open_socket(self.host, address[1], timeout, source)


class PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    """An HTTPConnection that resolves its host once, checks every address and connects to one of
    them; the Host header keeps the host name."""


class PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    """As PinnedHTTPConnection; TLS SNI and the certificate check use the host name."""

    def connect(self):
        super().connect()  # TCP to the checked address, then wrap_socket(server_hostname=self.host)
        self.sock.deadline = self._guard.deadline


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Certificates verified against the host name (ssl's defaults), sockets with the deadline."""
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.sslsocket_class = _DeadlineSSLSocket
    return ctx


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: _Guard):
        super().__init__()
        self.guard = guard

    def http_open(self, req):
        return self.do_open(lambda host, **kw: PinnedHTTPConnection(host, guard=self.guard, **kw), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: _Guard):
        super().__init__(context=tls_context())
        self.guard = guard

    def https_open(self, req):
        return self.do_open(lambda host, **kw: PinnedHTTPSConnection(host, guard=self.guard, **kw), req, context=self._context)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) URLs; their hosts are checked when connecting."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(guard: _Guard) -> urllib.request.OpenerDirector:
    """http and https only, no proxies, every connection through `guard`."""
    opener = urllib.request.OpenerDirector()
    for handler in (_PinnedHTTPHandler(guard), _PinnedHTTPSHandler(guard), _CheckedRedirects(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):  # fmt: skip
        opener.add_handler(handler)
    return opener


# ----------------------------------------------------------------------------------------------
# Image sizes from headers (no decoder runs).

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(d: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(d):
        if d[pos] != 0xFF:
            return None
        marker = d[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan before any frame header
            return None
        length = int.from_bytes(d[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF:
            if pos + 9 > len(d) or length < 8:
                return None
            h, w = struct.unpack(">HH", d[pos + 5 : pos + 9])
            return (w, h)
        if length < 2:
            return None
        pos += 2 + length
    return None


def _gif_size(d: bytes) -> tuple[int, int] | None:
    if len(d) < 13:
        return None
    w, h = struct.unpack("<HH", d[6:10])
    pos = 13 + ((3 << ((d[10] & 7) + 1)) if d[10] & 0x80 else 0)  # skip the global colour table
    while pos < len(d):  # the first frame may be larger than the logical screen
        if d[pos] == 0x2C:
            if pos + 9 > len(d):
                return None
            x, y, fw, fh = struct.unpack("<HHHH", d[pos + 1 : pos + 9])
            return (max(w, x + fw), max(h, y + fh))
        if d[pos] != 0x21 or pos + 2 >= len(d):
            return None
        pos += 2  # extension: introducer, label, then sub-blocks until a zero length
        while pos < len(d) and d[pos]:
            pos += d[pos] + 1
        pos += 1
    return None


def _webp_size(d: bytes) -> tuple[int, int] | None:
    kind, body = d[12:16], d[20:]
    if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", body[6:10])
        return (w & 0x3FFF, h & 0x3FFF)
    if kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X" and len(body) >= 10:
        return (int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1)
    return None


def _bmp_size(d: bytes) -> tuple[int, int] | None:
    if len(d) < 26:
        return None
    if int.from_bytes(d[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", d[18:22])
    w, h = struct.unpack("<ii", d[18:26])
    return (abs(w), abs(h))


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header of a JPEG, PNG, GIF, WebP or BMP, without decoding
    pixels (and without Pillow or OpenCV); None for any other format or an unreadable header."""
    try:
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return _gif_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"BM":
            return _bmp_size(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


# ----------------------------------------------------------------------------------------------
# The fetch.


@dataclass
class Fetched:
    data: bytes | None
    error: str | None
    last_modified: str | None = None


def _read_body(r, limit: int, deadline: _Deadline) -> bytes:
    """Up to `limit` bytes of the body, read under the deadline."""
    parts, got = [], 0
    while got < limit:
        chunk = r.read1(min(1 << 16, limit - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        if deadline.expired():
            raise DeadlineExceeded(deadline.message())
    return b"".join(parts)


def fetch(url: str, timeout: float, policy: FetchPolicy, disallowed: set[str] | None, user_agent_token: str | None) -> Fetched:
    from img2dataset.downloader import is_disallowed

    agent = USER_AGENT if not user_agent_token else f"{USER_AGENT} ({user_agent_token})"
    deadline = _Deadline(timeout, policy.deadline if policy.deadline is not None else DEADLINE_FACTOR * timeout)
    try:
        _check_url(url)
        req = urllib.request.Request(url, headers={"User-Agent": agent})
        with _opener(_Guard(policy, deadline)).open(req, timeout=timeout) as r:
            if disallowed and is_disallowed(r.headers, user_agent_token, disallowed):
                return Fetched(None, f"{REFUSED} Use of image disallowed by X-Robots-Tag directive")
            last_modified = r.headers.get("Last-Modified")
            declared = r.headers.get("Content-Length")
            try:
                data = _read_body(r, policy.max_bytes + 1, deadline)
            except http.client.IncompleteRead as e:
                return Fetched(None, f"incomplete read: {len(e.partial)} bytes, then the connection closed")
        if len(data) > policy.max_bytes:
            return Fetched(None, f"{REFUSED} more than {policy.max_bytes} bytes")
        if declared and declared.isdigit() and len(data) < int(declared):
            return Fetched(None, f"incomplete read: {len(data)} of {declared} bytes")
        size = image_size_from_header(data)
        if size is None or size[0] < 1 or size[1] < 1:
            return Fetched(None, f"{REFUSED} cannot read the image size before decoding (only JPEG, PNG, GIF, WebP and "
                                 "BMP headers are read; others are never decoded)")  # fmt: skip
        if size[0] * size[1] > policy.max_pixels:
            return Fetched(None, f"{REFUSED} {size[0]}x{size[1]} pixels, over the cap of {policy.max_pixels}")
        return Fetched(data, None, last_modified)
    except Refused as e:
        return Fetched(None, str(e))
    except Exception as e:  # noqa: BLE001 - every network failure becomes the row's status
        if isinstance(e, DeadlineExceeded) or deadline.expired():
            return Fetched(None, deadline.message())
        return Fetched(None, str(e) or type(e).__name__)
