"""The same download gives the same bytes: img2dataset writes a shard's samples in the order its
threads finish, and tic rewrites each tar in uid order (`ticdata.wds.write_in_key_order`), so two
downloads of one curated folder give byte-identical tars and shard tables (and so the same eval
sets, training shards and training draws after them)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile

import polars as pl

from ticdata.curate import CurateConfig, curate
from ticdata.download import DownloadConfig, download
from ticdata.executor import InlineExecutor
from ticdata.fetch import FetchPolicy
from ticdata.recover import uid_of
from ticdata.serve import ImageServer
from ticdata.synth.world import caption, image_url
from ticdata.tars import TarWriter
from ticdata.wds import write_in_key_order

SAMPLE = (("jpg", b"\xff\xd8 image of "), ("txt", b"caption of "), ("json", b'{"uid": "'))


def _tar_with(path, keys):
    """A tar written by Python's tarfile (as img2dataset does) with the samples of `keys` in that order."""
    with tarfile.open(path, "w") as tf:
        for k in keys:
            for ext, body in SAMPLE:
                data = body + k.encode()
                info = tarfile.TarInfo(f"{k}.{ext}")
                info.size, info.mtime = len(data), 1700000000
                tf.addfile(info, io.BytesIO(data))


def test_samples_come_out_in_key_order_with_their_members_in_order(tmp_path):
    keys = ["c3", "a1", "b2", "e5", "d4"]
    _tar_with(tmp_path / "shuffled.tar", keys)
    assert write_in_key_order(tmp_path / "shuffled.tar", tmp_path / "out.tar") == 5
    with tarfile.open(tmp_path / "out.tar") as tf:
        got = [(m.name, tf.extractfile(m).read()) for m in tf]
    assert got == [(f"{k}.{ext}", body + k.encode()) for k in sorted(keys) for ext, body in SAMPLE]
    # another order in, the same bytes out, and the bytes tic's own writer gives the sorted samples
    _tar_with(tmp_path / "other.tar", list(reversed(keys)))
    write_in_key_order(tmp_path / "other.tar", tmp_path / "out2.tar")
    with open(tmp_path / "direct.tar", "wb") as fh:
        w = TarWriter(fh)
        for name, data in got:
            w.add(name, data)
        w.close()
    assert (tmp_path / "out.tar").read_bytes() == (tmp_path / "out2.tar").read_bytes() == (tmp_path / "direct.tar").read_bytes()


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.suffix in (".tar", ".parquet")}


def test_two_downloads_of_one_folder_give_the_same_bytes(tmp_path):
    with ImageServer() as server:
        records = []
        for year, snap in ((2017, "CC-MAIN-2017-04"), (2019, "CC-MAIN-2019-51")):
            for i in range(60):
                url, text = image_url(server.url, 0, year, i % 4, i), caption(0, year, i % 4, i)
                records.append({"uid": uid_of(url, text), "url": url, "text": text,
                                "source": f"crawl-data/{snap}/segments/1/wat/a.warc.wat.gz"})
        pl.DataFrame(records).write_parquet(tmp_path / "pool.parquet")
        curate(CurateConfig(inputs=(str(tmp_path / "pool.parquet"),), out=tmp_path / "a", progress=False), InlineExecutor())
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        for name in ("a", "b"):
            download(DownloadConfig(dir=tmp_path / name, image_size=32, samples_per_shard=25, threads=16, timeout=3.0,
                                    progress=False, policy=FetchPolicy(allow_private_hosts=True)), InlineExecutor())
    a, b = _digests(tmp_path / "a" / "shards"), _digests(tmp_path / "b" / "shards")
    assert len([k for k in a if k.endswith(".tar")]) == 6 and a == b
    for tar in sorted((tmp_path / "a" / "shards").rglob("*.tar")):
        with tarfile.open(tar) as tf:
            keys = [m.name.split(".")[0] for m in tf if m.name.endswith(".jpg")]
        assert keys == sorted(keys) and len(keys) == 25 - (tar.name == "00000002.tar") * 15
