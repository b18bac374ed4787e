"""Object storage (s3://) as a small pathlib-like type, so a job's inputs, outputs and state can
live where DataComp's metadata does.

`location(x)` returns a `pathlib.Path` for a local path and an `ObjectPath` for an `s3://bucket/key`
URL. ObjectPath offers the part of pathlib the jobs use (`/`, name, parent, exists, is_dir,
read/write bytes and text, unlink, stat, iterdir, rglob), over pyarrow's S3 filesystem (no extra
dependency). Two differences matter and are handled in `ticdata.storage`: an object store has no
folders (mkdir does nothing; a "folder" exists while an object lies under it) and no rename (one
PUT is already whole or absent, so writes go straight to their final key).

The endpoint and credentials come from the environment, as for the AWS CLI: AWS_ENDPOINT_URL
(or AWS_ENDPOINT_URL_S3) for an S3-compatible store such as MinIO, Ceph or moto; AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the SDK's own chain; AWS_REGION or AWS_DEFAULT_REGION.
Only the URL string travels to Ray tasks; each process builds its own filesystem from its environment.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

from ticdata.errors import UserError

SCHEMES = ("s3://",)


def is_remote(p) -> bool:
    return isinstance(p, ObjectPath) or str(p).startswith(SCHEMES)


def location(p) -> "Path | ObjectPath":
    """A local Path (user-expanded) or an ObjectPath for an object-store URL."""
    if isinstance(p, ObjectPath):
        return p
    s = os.fspath(p) if not isinstance(p, str) else p
    if s.startswith(SCHEMES):
        return ObjectPath(s)
    if "://" in s:
        raise UserError(f"{s}: tic reads and writes local paths and s3:// URLs; copy the data or mount it")
    return Path(s).expanduser()


@lru_cache(maxsize=None)
def _s3(endpoint: str | None, region: str | None):
    import pyarrow.fs as pafs

    kwargs: dict = {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def s3_filesystem():
    """pyarrow's S3 filesystem configured from this process's environment (see the module doc)."""
    env = os.environ
    return _s3(env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"), env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))


def _io_error(url: str, e: OSError) -> UserError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return UserError(f"{url}: the object store refused ({first[:300]}); check the bucket, AWS_ENDPOINT_URL and the credentials")


@dataclass(frozen=True, order=True)
class ObjectPath:
    """One key (or key prefix, a "folder") in an object store, named by its URL."""

    url: str

    def __post_init__(self) -> None:
        scheme, rest = self.url.split("://", 1)
        rest = "/".join(x for x in rest.split("/") if x)  # no empty segments, no trailing slash
        if not rest:
            raise UserError(f"{self.url}: name a bucket (s3://bucket/prefix)")
        object.__setattr__(self, "url", f"{scheme}://{rest}")

    # ---------------------------------------------------------------- names
    @property
    def key(self) -> str:
        """bucket/key: the path as the filesystem takes it."""
        return self.url.split("://", 1)[1]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(self.url.rsplit("/", 1)[0]) if "/" in self.key else self

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def __truediv__(self, other) -> "ObjectPath":
        return ObjectPath(f"{self.url}/{other}")

    def joinpath(self, *parts) -> "ObjectPath":
        out = self
        for p in parts:
            out = out / p
        return out

    def with_name(self, name: str) -> "ObjectPath":
        return self.parent / name

    def is_relative_to(self, other) -> bool:
        o = str(other).rstrip("/")
        return self.url == o or self.url.startswith(o + "/")

    def relative_to(self, other) -> Path:
        if not self.is_relative_to(other):
            raise ValueError(f"{self} is not under {other}")
        return Path(self.url[len(str(other).rstrip("/")) + 1:])

    def resolve(self, strict: bool = False) -> "ObjectPath":
        return self

    def expanduser(self) -> "ObjectPath":
        return self

    def __str__(self) -> str:
        return self.url

    # ---------------------------------------------------------------- queries
    def _info(self):
        try:
            return s3_filesystem().get_file_info(self.key)
        except OSError as e:
            raise _io_error(self.url, e) from None

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_symlink(self) -> bool:
        return False

    def stat(self):
        import pyarrow.fs as pafs

        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(self.url)
        mode = stat.S_IFDIR | 0o755 if info.type == pafs.FileType.Directory else stat.S_IFREG | 0o644
        return SimpleNamespace(st_size=info.size or 0, st_mtime_ns=info.mtime_ns or 0, st_mode=mode)

    def _walk(self):
        import pyarrow.fs as pafs

        try:
            infos = s3_filesystem().get_file_info(pafs.FileSelector(self.key, recursive=True, allow_not_found=True))
        except OSError as e:
            raise _io_error(self.url, e) from None
        return [(ObjectPath(f"s3://{i.path}"), i.type == pafs.FileType.File) for i in infos]

    def files(self) -> list["ObjectPath"]:
        """Every object under this prefix (at any depth), sorted."""
        return sorted(p for p, is_file in self._walk() if is_file)

    def iterdir(self):
        seen = {}
        for p, _ in self._walk():
            first = p.relative_to(self).parts[0]
            seen.setdefault(first, self / first)
        return iter(sorted(seen.values()))

    def rglob(self, pattern: str):
        return iter(sorted(p for p, _ in self._walk() if fnmatch.fnmatch(p.name, pattern)))

    def glob(self, pattern: str):
        parts = pattern.split("/")
        return iter(sorted(p for p, _ in self._walk() if len(p.relative_to(self).parts) == len(parts)
                           and all(fnmatch.fnmatch(a, b) for a, b in zip(p.relative_to(self).parts, parts))))

    # ---------------------------------------------------------------- reading and writing
    def open(self, mode: str = "rb"):
        """rb: a seekable file (Parquet footers, row groups); wb: one upload, whole when closed."""
        try:
            if mode == "rb":
                return s3_filesystem().open_input_file(self.key)
            if mode == "wb":
                return s3_filesystem().open_output_stream(self.key)
        except FileNotFoundError:
            raise FileNotFoundError(self.url) from None
        except OSError as e:
            raise _io_error(self.url, e) from None
        raise ValueError(f"mode {mode!r}: rb or wb")

    def read_bytes(self) -> bytes:
        with self.open("rb") as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        try:
            with s3_filesystem().open_output_stream(self.key) as fh:
                fh.write(data)
        except OSError as e:
            raise _io_error(self.url, e) from None

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object lies under it."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            s3_filesystem().delete_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except OSError as e:
            if not (missing_ok and "NotFound" in str(e)):
                raise _io_error(self.url, e) from None

    def rmtree(self) -> None:
        """Delete every object under this prefix (no error when there is none)."""
        try:
            if self.is_dir():
                s3_filesystem().delete_dir(self.key)
        except OSError as e:
            raise _io_error(self.url, e) from None
