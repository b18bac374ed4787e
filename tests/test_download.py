"""`tic download` against the synthetic world's HTTP server: every failure the web has, a status for
every row, reruns that retry only failures, shards open_clip reads."""

from __future__ import annotations

import hashlib
import json
import tarfile
from types import SimpleNamespace

import polars as pl
import pytest

from ticdata.layout import state_dir
from ticdata.curate import CurateConfig, curate
from ticdata.download import DownloadConfig, bucket_shards, download, format_summary, wds_urls
from ticdata.executor import InlineExecutor, RayExecutor
from ticdata.fetch import FetchPolicy
from ticdata.manifest import scan_manifest
from ticdata.recover import uid_of
from ticdata.serve import ImageServer
from ticdata.synth.world import caption, image_url, render

# (kind, expected status) for the failure routes of the server
ROUTES = {
    None: "success",
    "redirect": "success",
    "404": "failed_to_download",
    "500": "failed_to_download",
    "slow": "failed_to_download",
    "truncated": "failed_to_download",
    "corrupt": "refused",  # its size cannot be read before decoding: refused, never decoded
    "huge": "refused",
    "noai": "refused",
}
SNAP = {2017: "crawl-data/CC-MAIN-2017-04/segments/1/wat/a.warc.wat.gz", 2019: "crawl-data/CC-MAIN-2019-51/segments/1/wat/b.warc.wat.gz"}


@pytest.fixture()
def server():
    with ImageServer(slow_seconds=3.0) as s:
        yield s


def make_pool(tmp_path, base_url, normal_per_year=12):
    rows = []
    for year in (2017, 2019):
        for i in range(normal_per_year):
            rows.append((year, 0, i, None))
        for j, kind in enumerate(k for k in ROUTES if k):
            rows.append((year, 1, 100 + j, kind))
    records = []
    for year, concept, inst, kind in rows:
        url = image_url(base_url, 0, year, concept, inst, kind=kind)
        text = caption(0, year, concept, inst)
        records.append({"uid": uid_of(url, text), "url": url, "text": text, "source": SNAP[year], "kind": kind or "ok"})
    # one row outside every bucket of tic-datacomp (2013): not downloaded, but it gets a status
    url = image_url(base_url, 0, 2013, 0, 0)
    records.append({"uid": uid_of(url, "old"), "url": url, "text": "old", "source": "crawl-data/CC-MAIN-2013-20/x", "kind": "outside"})
    pool = tmp_path / "pool.parquet"
    pl.DataFrame(records).write_parquet(pool)
    out = tmp_path / "cur"
    curate(CurateConfig(inputs=(str(pool),), out=out, progress=False), InlineExecutor())
    return out, pl.DataFrame(records)


def config(out, **kw):
    base = dict(dir=out, image_size=64, samples_per_shard=8, threads=8, timeout=1.0, progress=False,
                policy=FetchPolicy(allow_private_hosts=True, max_pixels=50_000_000))
    return DownloadConfig(**(base | kw))  # fmt: skip


def read_tar(path):
    samples = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            key, ext = m.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return samples


def test_every_row_gets_a_status_and_shards_hold_the_successes(tmp_path, server):
    out, records = make_pool(tmp_path, server.url)
    summary = download(config(out), InlineExecutor())
    man = scan_manifest(out).collect().join(records.select("uid", "kind"), on="uid")
    assert man["status"].null_count() == 0 and man.height == records.height  # no lost row
    for kind, expected in ROUTES.items() | {"outside": "skipped"}.items():
        got = set(man.filter(pl.col("kind") == (kind or "ok"))["status"])
        assert got, kind
        assert got == {expected}, (kind, got, man.filter(pl.col("kind") == (kind or "ok"))["error_message"].to_list())
    assert man.filter(pl.col("kind") == "slow")["error_message"].str.contains("timed out").all()
    assert man.filter(pl.col("kind") == "truncated")["error_message"].str.contains("incomplete read").all()
    assert man.filter(pl.col("kind") == "noai")["error_message"].str.contains("X-Robots-Tag").all()
    assert man.filter(pl.col("kind") == "huge")["error_message"].str.contains("pixels").all()
    ok = man.filter(pl.col("status") == "success")
    # sha256 of the original bytes; Last-Modified kept; EXIF date on the server's every-3rd subset
    normal = ok.filter(pl.col("kind") == "ok").sort("uid")
    first = normal.row(0, named=True)
    parts = first["url"].rsplit("/", 4)
    year, concept, inst = int(parts[2]), int(parts[3].lstrip("c")), int(parts[4][:-4])
    assert first["sha256"] == hashlib.sha256(render(0, year, concept, inst)).hexdigest()
    assert ok["last_modified"].null_count() == 0
    assert man.schema["last_modified"] == man.schema["exif_datetime_original"] == man.schema["ts"] == pl.Datetime("us", "UTC")
    assert normal.filter(pl.col("exif_datetime_original").is_not_null()).height > 0
    dated = normal.filter(pl.col("exif_datetime_original").is_not_null())
    assert (dated["exif_datetime_original"].dt.year() == dated["year"]).any()
    assert (ok["last_modified"].dt.year() <= ok["year"]).all()  # the world's capture time, before the crawl
    # the shards hold exactly the successes, keyed by uid, with .jpg/.txt/.json
    for bucket in ("2017", "2019"):
        sizes = json.loads((out / "shards" / bucket / "sizes.json").read_text())
        seen = {}
        for tar in bucket_shards(out, bucket):
            samples = read_tar(tar)
            assert sizes[tar.name] == len(samples)
            seen.update(samples)
        want = ok.filter(pl.col("year") == int(bucket))
        assert set(seen) == set(want["uid"])
        for uid, s in seen.items():
            assert set(s) == {"jpg", "txt", "json"}
            meta = json.loads(s["json"])
            assert meta["uid"] == uid and meta["year"] == int(bucket) and meta["key"] == uid
            assert s["txt"].decode() == want.filter(pl.col("uid") == uid)["text"][0]
        assert summary[bucket]["statuses"]["success"] == len(seen)
    assert not (out / "shards" / "2017" / "_tmp").exists()
    check_shard_files(out, {b: man.filter(pl.col("year") == int(b)).height for b in ("2017", "2019")})
    # the summary: throughput of the round, failures by reason (each failure route: one row per year)
    failed = man.filter(pl.col("status").is_in(["failed_to_download", "failed_to_resize", "refused"]))
    assert summary.errors == {"HTTP 404": 2, "HTTP 500": 2, "timed out": 2, "incomplete read": 2, "refused: over the pixel cap": 2,
                              "refused: unreadable image header": 2, "refused: X-Robots-Tag": 2}
    assert sum(summary.errors.values()) == failed.height
    last = summary.last_round
    assert last["round"] == 1 and last["images"] == ok.filter(pl.col("year").is_in([2017, 2019])).height
    assert last["rows"] == man.filter(pl.col("status") != "skipped").height and last["unparsed_dates"] == {}
    assert last["bytes_downloaded"] > 0 and last["images_per_s"] > 0 and last["mb_per_s"] > 0
    assert abs(last["images_per_s"] - last["images"] / last["seconds"]) < 0.01 * last["images_per_s"] + 0.01
    doc = json.loads((out / "manifest.json").read_text())["download"]
    assert doc["errors"] == summary.errors and doc["last_round"] == last and doc["top_errors"][0] == ["HTTP 404", 2]
    assert {b: v["errors"] for b, v in doc["buckets"].items()} == {b: {r: 1 for r in summary.errors} for b in ("2017", "2019")}
    text = format_summary(summary)
    assert "images/s" in text and "MB/s" in text and "failures by reason (14 rows, 7 reasons)" in text and "HTTP 404" in text
    # a folder downloaded before the dates were typed (strings) is upgraded in place by the next download
    before = scan_manifest(out).select("uid", "last_modified", "exif_datetime_original").collect().sort("uid")
    for part in (out / "manifest").rglob("*.parquet"):
        df = pl.read_parquet(part)
        df.with_columns(
            last_modified=pl.col("last_modified").dt.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            exif_datetime_original=pl.when(pl.col("uid") == first["uid"]).then(pl.lit("0000:00:00 00:00:00"))
            .otherwise(pl.col("exif_datetime_original").dt.strftime("%Y:%m:%d %H:%M:%S")),
        ).write_parquet(part)
    again = download(config(out), InlineExecutor())
    assert again.upgraded == {"exif_datetime_original": {"placeholder 0000:00:00": 1}}
    after = scan_manifest(out).select("uid", "last_modified", "exif_datetime_original").collect().sort("uid")
    assert after.schema == before.schema
    assert after.filter(pl.col("uid") != first["uid"]).equals(before.filter(pl.col("uid") != first["uid"]))
    assert after.filter(pl.col("uid") == first["uid"])["exif_datetime_original"].to_list() == [None]
    assert json.loads((out / "manifest.json").read_text())["download"]["upgraded_dates"] == again.upgraded


def check_shard_files(out, inputs: dict[str, int]):
    """img2dataset's files beside every shard, counted independently: NNNNNNNN_stats.json and
    NNNNNNNN.parquet agree with the tar (read with tarfile) and with the manifest; the shards' input
    rows add up to `inputs` per bucket (the rows each round fetched)."""
    man = scan_manifest(out).collect()
    latest = {}  # uid -> status in the newest shard that lists it (a later round retries a failure)
    for bucket, expected_rows in inputs.items():
        folder = out / "shards" / bucket
        stems = sorted({p.name.split(".")[0].removesuffix("_stats") for p in folder.iterdir() if p.name != "sizes.json"})
        assert stems and all(s.isdigit() and len(s) == 8 for s in stems), stems
        sizes = json.loads((folder / "sizes.json").read_text())
        total = 0
        for stem in stems:
            stats = json.loads((folder / f"{stem}_stats.json").read_text())
            shard = pl.read_parquet(folder / f"{stem}.parquet")
            tar = folder / f"{stem}.tar"
            keys = set(read_tar(tar)) if tar.exists() else set()
            assert sizes.get(f"{stem}.tar", 0) == len(keys)
            ok = shard.filter(pl.col("status") == "success")
            assert set(ok["uid"]) == set(ok["key"]) == keys and ok.height == len(keys)
            assert stats["successes"] == len(keys) and stats["bytes_written"] == (tar.stat().st_size if keys else 0)
            assert stats["count"] == shard.height == stats["successes"] + stats["failed_to_download"] + stats["failed_to_resize"]
            assert stats["statuses"] == {s: n for s, n in shard.group_by("status").len().iter_rows()}
            assert stats["refused"] == stats["statuses"].get("refused", 0)
            assert sum(stats["errors"].values()) == shard.height - ok.height
            assert stats["duration"] >= 0 and stats["end_time"] >= stats["start_time"] and stats["bucket"] == bucket
            for col in ("ts", "last_modified", "exif_datetime_original"):
                assert shard.schema[col] == pl.Datetime("us", "UTC")
            assert set(shard["uid"]) <= set(man.filter(pl.col("year") == int(bucket))["uid"])
            assert set(man.filter(pl.col("shard") == f"{bucket}/{stem}.tar")["uid"]) == keys
            mine = shard.join(man.select("uid", m_ts="ts", m_sha="sha256"), on="uid")
            assert (mine["ts"] == mine["m_ts"]).all()
            assert (mine.filter(pl.col("status") == "success").select((pl.col("sha256") == pl.col("m_sha")).all())).item()
            latest.update(dict(zip(shard["uid"], shard["status"])))
            total += stats["count"]
        assert total == expected_rows, (bucket, total, expected_rows)
    status = dict(zip(man["uid"], man["status"]))
    assert all(status[u] == s for u, s in latest.items())


@pytest.mark.slow
def test_rerun_retries_only_the_failures(tmp_path, server):
    out, records = make_pool(tmp_path, server.url, normal_per_year=6)
    download(config(out), InlineExecutor())
    before = scan_manifest(out).collect()
    tars = {p: p.stat().st_mtime_ns for p in (out / "shards").rglob("*.tar")}
    requested_before = sum(server.counts.values())
    download(config(out, timeout=5.0), InlineExecutor())  # the slow route now answers in time
    after = scan_manifest(out).collect()
    retried = before.filter(~pl.col("status").is_in(["success", "skipped"]))
    check_shard_files(out, {b: before.filter(pl.col("year") == int(b)).height + retried.filter(pl.col("year") == int(b)).height
                            for b in ("2017", "2019")})
    newly = sum(server.counts.values()) - requested_before
    failed = before.filter(~pl.col("status").is_in(["success", "skipped"]))
    assert newly >= failed.height and newly <= failed.height + 2  # one request per retried row (+ redirect hops)
    assert {p: p.stat().st_mtime_ns for p in tars} == tars  # finished shards untouched
    slow = after.join(records.filter(pl.col("kind") == "slow").select("uid"), on="uid")
    assert set(slow["status"]) == {"success"}
    kept = before.filter(pl.col("status") == "success").select("uid", "sha256", "shard")
    assert kept.join(after.select("uid", "sha256", "shard"), on="uid").filter(pl.col("shard") != pl.col("shard_right")).height == 0
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["download"]["rounds"] == 2


def test_private_hosts_are_refused_by_default(tmp_path, server):
    out, _ = make_pool(tmp_path, server.url, normal_per_year=2)
    download(config(out, policy=FetchPolicy()), InlineExecutor())
    man = scan_manifest(out).collect().filter(pl.col("status") != "skipped")  # the row outside the buckets
    assert set(man["status"]) == {"refused"}
    assert man["error_message"].str.contains("--allow-private-hosts").all()
    assert sum(server.counts.values()) == 0  # nothing was even requested


@pytest.mark.slow
def test_ray_download_and_open_clip_reads_the_shards(tmp_path, server, ray_local):
    import open_clip
    import torch
    from open_clip_train.data import get_wds_dataset
    from torchvision import transforms

    out, _ = make_pool(tmp_path, server.url, normal_per_year=20)
    with RayExecutor() as ex:
        download(config(out), ex)
    sizes = json.loads((out / "shards" / "2019" / "sizes.json").read_text())
    args = SimpleNamespace(
        train_data=wds_urls(out, "2019"), val_data=None, train_num_samples=None, train_data_upsampling_factors=None,
        dataset_resampled=False, seed=0, batch_size=4, workers=1, world_size=1,
    )  # fmt: skip
    preprocess = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])
    info = get_wds_dataset(args, preprocess, is_train=True, tokenizer=open_clip.get_tokenizer("RN50"))
    assert info.dataloader.num_samples >= sum(sizes.values())
    n = 0
    for images, texts in info.dataloader:
        assert images.shape[1:] == (3, 32, 32) and texts.dtype == torch.long
        n += images.shape[0]
    assert n == info.dataloader.num_samples


@pytest.mark.slow
def test_killed_download_resumes_and_skips_finished_shards(tmp_path, server):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out, records = make_pool(tmp_path, server.url, normal_per_year=40)
    tic = str(Path(sys.executable).with_name("tic"))
    args = [tic, "download", str(out), "--executor", "inline", "--allow-private-hosts", "--samples-per-shard", "4",
            "--threads", "2", "--timeout", "1", "--image-size", "64", "-q"]  # fmt: skip
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    markers = lambda: list((state_dir(out, "download") / "completions").glob("shard-*.json"))  # noqa: E731
    deadline = time.monotonic() + 120
    while len(markers()) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {m.stem for m in markers()}
    first_pass = server.paths
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    man = scan_manifest(out).collect().join(records.select("uid", "kind"), on="uid")
    assert man["status"].null_count() == 0
    assert set(man.filter(pl.col("kind") == "ok")["status"]) == {"success"}
    again = {path for path, n in server.paths.items() if n > first_pass.get(path, 0) and first_pass.get(path, 0) > 0}
    # Only the URLs of the shard in flight at the kill are fetched twice (inline: one shard at a
    # time, 4 rows; a redirect is two paths), whatever the number of shards finished before it.
    assert len(again) <= 4 + 1, again
    assert sum(first_pass.values()) > 0 and len(server.paths) >= len(first_pass)
    assert len(done) >= 4
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["download"]["rounds"] == 1


def test_a_bucket_name_that_would_escape_the_shards_folder_is_refused(tmp_path, server):
    from ticdata.errors import UserError

    bench = tmp_path / "evil.toml"
    bench.write_text('name = "evil"\n[[steps]]\nname = "../../outside"\nyears = [2017, 2019]\n')
    good, records = make_pool(tmp_path, server.url, normal_per_year=1)
    out = tmp_path / "cur2"
    # The benchmark is refused where it is loaded, before curate writes anything ...
    with pytest.raises(UserError, match="evil.toml.*cannot name a folder"):
        curate(CurateConfig(inputs=(str(tmp_path / "pool.parquet"),), out=out, benchmark=str(bench), progress=False), InlineExecutor())
    assert not out.exists()
    # ... and a manifest.json edited by hand to name such a bucket is refused by download.
    doc = json.loads((good / "manifest.json").read_text())
    doc["benchmark"]["steps"][0]["name"] = "../../outside"
    doc["buckets"] = {"../../outside" if i == 0 else k: v for i, (k, v) in enumerate(doc["buckets"].items())}
    (good / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="cannot name a folder"):
        download(config(good), InlineExecutor())
    assert not (tmp_path / "outside").exists() and not (good / "shards").exists()
