"""Safe HTTP fetching of one image, in img2dataset's `download_image` contract.

img2dataset's own fetch follows redirects anywhere, reads any number of bytes and hands the
bytes to a decoder that allocates the full pixel array before checking its area. This fetch:

- refuses private, loopback, link-local and reserved addresses (also after each redirect) unless
  the policy allows them (`--allow-private-hosts`, for tests and the embedded demo);
- stops reading past `max_bytes`, and reads the image header (not the pixels) to refuse images
  over `max_pixels` before anything decodes them;
- honours X-Robots-Tag directives exactly as img2dataset does;
- keeps the HTTP Last-Modified header as timestamp evidence for the audit.

Refusals are returned as error messages starting with "refused:", so the downloader can tell a
policy decision (not retried) from a failure (retried on the next run).
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

REFUSED = "refused:"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) tic/0.1 (+https://github.com/tic-clip/tic; compatible; img2dataset)"


@dataclass(frozen=True)
class FetchPolicy:
    allow_private_hosts: bool = False
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # 40 MP, e.g. 8000 x 5000


class Refused(Exception):
    """A policy refusal: the message says which rule and how to change it."""


def _check_host(url: str, policy: FetchPolicy) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"{REFUSED} scheme {parts.scheme!r} (only http and https)")
    host = parts.hostname
    if not host:
        raise Refused(f"{REFUSED} no host in url")
    if policy.allow_private_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host}: {e}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
            raise Refused(f"{REFUSED} {host} is a private or loopback address ({ip}); pass --allow-private-hosts to fetch it")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to hosts the policy allows."""

    def __init__(self, policy: FetchPolicy):
        self.policy = policy

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_host(newurl, self.policy)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_local = threading.local()


def _opener(policy: FetchPolicy) -> urllib.request.OpenerDirector:
    cached = getattr(_local, "opener", None)
    if cached is None or cached[0] != policy:
        cached = (policy, urllib.request.build_opener(_CheckedRedirects(policy)))
        _local.opener = cached
    return cached[1]


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding pixels; None if PIL cannot tell.
    PIL's own bomb check is off here: the caller applies its cap to the size returned."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:
        return (1 << 31, 1)  # beyond any cap: PIL refused even to open it
    except Exception:  # noqa: BLE001 - any unreadable header is the decoder's problem, not ours
        return None


@dataclass
class Fetched:
    data: bytes | None
    error: str | None
    last_modified: str | None = None


def fetch(url: str, timeout: float, policy: FetchPolicy, disallowed: set[str] | None, user_agent_token: str | None) -> Fetched:
    from img2dataset.downloader import is_disallowed

    agent = USER_AGENT if not user_agent_token else f"{USER_AGENT} ({user_agent_token})"
    try:
        _check_host(url, policy)
        req = urllib.request.Request(url, headers={"User-Agent": agent})
        with _opener(policy).open(req, timeout=timeout) as r:
            if disallowed and is_disallowed(r.headers, user_agent_token, disallowed):
                return Fetched(None, f"{REFUSED} Use of image disallowed by X-Robots-Tag directive")
            last_modified = r.headers.get("Last-Modified")
            declared = r.headers.get("Content-Length")
            data = r.read(policy.max_bytes + 1)
        if len(data) > policy.max_bytes:
            return Fetched(None, f"{REFUSED} more than {policy.max_bytes} bytes")
        if declared and declared.isdigit() and len(data) < int(declared):
            return Fetched(None, f"incomplete read: {len(data)} of {declared} bytes")
        size = image_size_from_header(data)
        if size and size[0] * size[1] > policy.max_pixels:
            return Fetched(None, f"{REFUSED} {size[0]}x{size[1]} pixels, over the cap of {policy.max_pixels}")
        return Fetched(data, None, last_modified)
    except Refused as e:
        return Fetched(None, str(e))
    except Exception as e:  # noqa: BLE001 - every network failure becomes the row's status
        return Fetched(None, str(e) or type(e).__name__)
