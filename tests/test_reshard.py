"""`reshard`: webdataset pool -> per-bucket shards, checked against an independent computation.

The pools are made here (webdataset.TarWriter and tarfile, tiny PIL JPEGs) with planted
duplicates (across and within tars), malformed samples, extra members and DataComp side files;
the expected bucket contents and ledger are computed from what was planted, in input order.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import REPO, tree_digest
from ticdata.errors import UserError
from ticdata.executor import InlineExecutor, RayExecutor
from ticdata import reshard as rs
from ticdata.reshard import plan_reshard, reshard
from ticdata.wds import braceexpand
from ticdata.layout import state_dir
from ticdata.tars import TarError, iter_members, member_header
from ticdata.uidlists import write_uid_file

OUT_PARTS = ("shards", "reshard.json")


# ----------------------------------------------------------------------------- the pools


def jpeg(rnd: random.Random, size: int = 8) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (size, size), tuple(rnd.randrange(256) for _ in range(3)))
    img.putpixel((rnd.randrange(size), rnd.randrange(size)), (rnd.randrange(256), 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rnd.randrange(60, 95))
    return buf.getvalue()


def npy_bytes(rnd: random.Random) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([rnd.random() for _ in range(4)], np.float32))
    return buf.getvalue()


def make_pool(root: Path, n_tars: int = 5, per_tar: int = 30, seed: int = 0, payload: int = 0) -> list[dict]:
    """Write the pool; return every sample in input order: tar, key, members, and either its uid
    or the reason it is malformed (what the resharder must find out by itself)."""
    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth: list[dict] = []
    first_uids: list[str] = []
    for t in range(n_tars):
        samples = []
        for i in range(per_tar):
            uid = "%032x" % rnd.getrandbits(128)
            members = {"jpg": jpeg(rnd) + (rnd.randbytes(payload) if payload else b""), "txt": f"caption {t} {i}".encode(),
                       "json": json.dumps({"uid": uid, "url": f"http://img/{t}/{i}.jpg", "caption": "x"}).encode()}
            if i % 4 == 0:
                members["npy"] = npy_bytes(rnd)
            if i % 9 == 0:
                members["seg.png"] = rnd.randbytes(20)
            samples.append({"key": f"{t:04d}{i:05d}", "uid": uid, "reason": None, "members": members})
        first_uids.append(samples[3]["uid"])
        if t >= 1:  # a uid that an earlier tar already had (keep the first)
            samples[5]["uid"] = first_uids[t - 1]
            samples[5]["members"]["json"] = json.dumps({"uid": first_uids[t - 1], "n": t}).encode()
        if t == 2:  # the same uid twice within one tar
            samples[8]["uid"] = samples[7]["uid"]
            samples[8]["members"]["json"] = json.dumps({"uid": samples[7]["uid"], "again": True}).encode()
        if t == 1:
            del samples[10]["members"]["json"]
            samples[10]["uid"], samples[10]["reason"] = None, "no_json"
            samples[11]["members"]["json"] = b"{not json"
            samples[11]["uid"], samples[11]["reason"] = None, "bad_json"
            samples[12]["members"]["json"] = json.dumps({"url": "x"}).encode()
            samples[12]["uid"], samples[12]["reason"] = None, "no_uid"
            samples[13]["members"]["json"] = json.dumps({"uid": samples[13]["uid"].upper()}).encode()
            samples[13]["uid"], samples[13]["reason"] = None, "bad_uid"
        path = root / f"{t:08d}.tar"
        if t == 3:  # written with tarfile: GNU format, keys in a subfolder, a folder member
            with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
                d = tarfile.TarInfo("sub")
                d.type = tarfile.DIRTYPE
                tf.addfile(d)
                for s in samples:
                    s["key"] = "sub/" + s["key"]
                    for ext, data in s["members"].items():
                        ti = tarfile.TarInfo(f"{s['key']}.{ext}")
                        ti.size, ti.mtime = len(data), 1_700_000_000
                        tf.addfile(ti, io.BytesIO(data))
        else:
            import webdataset as wds

            with wds.TarWriter(str(path)) as w:
                for s in samples:
                    w.write({"__key__": s["key"], **s["members"]})
        # DataComp's side files, which reshard must skip
        (root / f"{t:08d}.parquet").write_bytes(b"PAR1 not really")
        (root / f"{t:08d}_stats.json").write_text("{}")
        for s in samples:
            s["tar"] = str(path)
        truth.extend(samples)
    return truth


def expected(truth: list[dict], bucket_of: dict[str, str], names: list[str]) -> tuple[dict[str, list[dict]], dict]:
    """Bucket contents in input order (first copy of each uid) and the ledger, computed directly."""
    seen: set[str] = set()
    out: dict[str, list[dict]] = {n: [] for n in names}
    led = {"rows_in": 0, "selected": 0, "not_selected": 0, "duplicates": 0,
           "malformed": dict.fromkeys(rs.MALFORMED, 0)}
    for s in truth:
        led["rows_in"] += 1
        if s["reason"]:
            led["malformed"][s["reason"]] += 1
        elif s["uid"] in seen:
            led["duplicates"] += 1
        else:
            seen.add(s["uid"])
            b = bucket_of.get(s["uid"])
            if b is None:
                led["not_selected"] += 1
            else:
                led["selected"] += 1
                out[b].append(s)
    return out, led


def read_bucket(folder: Path) -> tuple[dict, list[tuple[str, list[tarfile.TarInfo], dict[str, bytes]]]]:
    """sizes.json and every sample of a bucket's shards, in shard order (read with tarfile)."""
    sizes = json.loads((folder / "sizes.json").read_text())
    assert sorted(sizes) == sorted(p.name for p in folder.glob("*.tar"))
    assert list(sizes) == [f"{i:08d}.tar" for i in range(len(sizes))]
    samples = []
    for name in sizes:
        with tarfile.open(folder / name) as tf:
            n = 0
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                if not samples or samples[-1][0] != key or n == 0:
                    samples.append((key, [], {}))
                    n += 1
                samples[-1][1].append(m)
                samples[-1][2][ext] = tf.extractfile(m).read()
            assert n == sizes[name], name
    return sizes, samples


def check_output(out: Path, truth: list[dict], bucket_of: dict[str, str], names: list[str], per_shard: int) -> dict:
    want, led = expected(truth, bucket_of, names)
    doc = json.loads((out / "reshard.json").read_text())
    assert doc["ledger"] == led
    assert led["rows_in"] == led["selected"] + led["not_selected"] + led["duplicates"] + sum(led["malformed"].values())
    listed = {n: sum(1 for b in bucket_of.values() if b == n) for n in names}
    for name in names:
        sizes, got = read_bucket(out / "shards" / name)
        # exactly the bucket's uids, each once, in input order, first copy's bytes
        assert [k for k, _, _ in got] == [s["uid"] for s in want[name]]
        assert len({k for k, _, _ in got}) == len(got)
        for (key, infos, members), s in zip(got, want[name]):
            assert members == s["members"]
            exts = [i.name.split(".", 1)[1] for i in infos]
            assert exts == sorted(exts)
            for i in infos:
                assert (i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode, i.type) == (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
        counts = list(sizes.values())
        assert sum(counts) == len(want[name])
        assert all(c == per_shard for c in counts[:-1]) and (not counts or 0 < counts[-1] <= per_shard)
        b = doc["buckets"][name]
        assert (b["samples"], b["listed"], b["missing"], b["shards"]) == (len(want[name]), listed[name], listed[name] - len(want[name]), len(counts))
    return doc


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("pool")
    return root, make_pool(root)


def uid_selection(truth: list[dict], folder: Path, seed: int = 1) -> tuple[list[str], dict[str, str]]:
    """Three uid files: about half the pool's valid uids, plus uids the pool lacks."""
    rnd = random.Random(seed)
    uids = sorted({s["uid"] for s in truth if s["uid"]})
    bucket_of = {}
    files = {"2014": [], "2015": [], "late": []}
    repeated = {u for u in uids if sum(s["uid"] == u for s in truth) > 1}
    for u in uids:
        r = rnd.random()
        if r < 0.5 or u in repeated:  # every duplicated uid is selected: its later copies must be left out
            b = ["2014", "2015", "late"][int(r * 6) % 3]
            files[b].append(u)
            bucket_of[u] = b
    for i, b in enumerate(files):
        files[b] += ["%032x" % (2**127 + 1000 * i + j) for j in range(3)]  # listed, not in the pool
        for u in files[b][-3:]:
            bucket_of[u] = b
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for b, us in files.items():
        write_uid_file(folder / f"{b}.npy", us)
        specs.append(str(folder / f"{b}.npy") if b != "late" else f"late={folder / 'l8.npy'}")
    os.replace(folder / "late.npy", folder / "l8.npy")
    return specs, bucket_of


# --------------------------------------------------------------------------------- tests


def test_uid_files_give_exactly_each_buckets_samples(pool, tmp_path):
    root, truth = pool
    specs, bucket_of = uid_selection(truth, tmp_path / "uids")
    doc = reshard([str(root)], tmp_path / "out", InlineExecutor(), uid_files=specs, samples_per_shard=7, progress=False)
    check_output(tmp_path / "out", truth, bucket_of, ["2014", "2015", "late"], 7)
    assert doc["ledger"]["duplicates"] == 5 and doc["ledger"]["malformed"]["no_json"] == 1
    assert sum(b["duplicates"] for b in doc["buckets"].values()) == 5  # all of them selected uids
    assert all(b["missing"] >= 3 for b in doc["buckets"].values())
    assert doc["members_skipped"] == 1  # the folder member of the GNU tar
    assert doc["inputs"]["files"] == 5  # side files skipped
    assert not state_dir(tmp_path / "out", "reshard").exists()
    table = rs.format_reshard_table(doc)
    assert "ledger: read 150 = selected" in table and "malformed no_json" in table and "00000001.tar: 000100010" in table


def test_webdataset_reads_the_output_with_key_equal_uid(pool, tmp_path):
    import webdataset as wds

    root, truth = pool
    specs, bucket_of = uid_selection(truth, tmp_path / "uids")
    reshard([str(root / "{00000000..00000004}.tar")], tmp_path / "out", InlineExecutor(), uid_files=specs, samples_per_shard=5, progress=False)
    for name in ("2014", "2015", "late"):
        sizes = json.loads((tmp_path / "out" / "shards" / name / "sizes.json").read_text())
        urls = [str(tmp_path / "out" / "shards" / name / s) for s in sizes]
        got = list(wds.WebDataset(urls, shardshuffle=False))
        assert len(got) == sum(sizes.values())
        for s in got:
            assert s["__key__"] == json.loads(s["json"])["uid"]
            assert {"jpg", "txt", "json"} <= set(s)
        assert {s["__key__"] for s in got} == {u for u, b in bucket_of.items() if b == name} & {t["uid"] for t in truth}


def write_manifest(folder: Path, rows: list[dict], buckets: dict) -> None:
    """A curated folder by hand: manifest/year=YYYY/part-00000.parquet + manifest.json."""
    df = pl.DataFrame(rows, schema={"uid": pl.String, "url": pl.String, "text": pl.String, "year": pl.Int32,
                                    "month": pl.Int8, "split": pl.String})
    for (year,), part in df.partition_by("year", as_dict=True).items():
        p = folder / "manifest" / f"year={year}" / "part-00000.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        part.drop("year").write_parquet(p)
    (folder / "manifest.json").write_text(json.dumps({"buckets": buckets, "ledger": {}}))


@pytest.mark.parametrize("granularity", ["year", "month"])
def test_manifest_buckets_by_year_month_and_split(pool, tmp_path, granularity):
    root, truth = pool
    rnd = random.Random(5)
    uids = sorted({s["uid"] for s in truth if s["uid"]}) + ["%032x" % (2**126 + j) for j in range(4)]
    rows = [{"uid": u, "url": "u", "text": "t", "year": rnd.choice([2013, 2014, 2015, 2016]), "month": rnd.randint(1, 3),
             "split": "eval" if rnd.random() < 0.2 else "train"} for u in uids]
    if granularity == "year":
        buckets = {"2014-2015": {"rows": 0, "years": [2014, 2015]}, "2016": {"rows": 0, "years": [2016]}}
        bucket_of = {r["uid"]: ("2014-2015" if r["year"] in (2014, 2015) else "2016") for r in rows
                     if r["split"] == "train" and r["year"] >= 2014}
    else:
        buckets = {f"{y}-{m:02d}": {"rows": 0, "years": [y], "months": [m]} for y in (2015, 2016) for m in (1, 2, 3)}
        bucket_of = {r["uid"]: f"{r['year']}-{r['month']:02d}" for r in rows if r["split"] == "train" and r["year"] >= 2015}
    write_manifest(tmp_path / "cur", rows, buckets)
    reshard([str(root)], tmp_path / "out", InlineExecutor(), manifest=tmp_path / "cur", samples_per_shard=4, progress=False)
    check_output(tmp_path / "out", truth, bucket_of, list(buckets), 4)
    # split=None takes every split
    reshard([str(root)], tmp_path / "all", InlineExecutor(), manifest=tmp_path / "cur", split=None, samples_per_shard=4, progress=False)
    every = {r["uid"]: b for r in rows for b, spec in buckets.items()
             if r["year"] in spec["years"] and r["month"] in spec.get("months", [r["month"]])}
    check_output(tmp_path / "all", truth, every, list(buckets), 4)


def test_manifest_made_by_uids_import_uses_its_bucket_column(pool, tmp_path):
    from ticdata.uidsplits import import_uids

    root, truth = pool
    uids = sorted({s["uid"] for s in truth if s["uid"]})
    rows = [{"uid": u, "url": "u", "text": "t", "year": 2015, "month": 1, "split": "train"} for u in uids]
    write_manifest(tmp_path / "cur", rows, {"2015": {"rows": len(rows), "years": [2015]}})
    write_uid_file(tmp_path / "a.npy", uids[::3])
    write_uid_file(tmp_path / "b.npy", uids[1::3])
    import_uids(tmp_path / "cur", [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], tmp_path / "sel")
    reshard([str(root)], tmp_path / "out", InlineExecutor(), manifest=tmp_path / "sel", samples_per_shard=6, progress=False)
    bucket_of = {u: "a" for u in uids[::3]} | {u: "b" for u in uids[1::3]}
    check_output(tmp_path / "out", truth, bucket_of, ["a", "b"], 6)


def test_rerun_ray_and_grouping_give_identical_bytes(pool, tmp_path, ray_local):
    root, truth = pool
    specs, bucket_of = uid_selection(truth, tmp_path / "uids")
    kw = dict(uid_files=specs, samples_per_shard=7, progress=False)
    reshard([str(root)], tmp_path / "inline", InlineExecutor(), **kw)
    ref = tree_digest(tmp_path / "inline", OUT_PARTS)
    assert len([k for k in ref if k.endswith(".tar")]) >= 6
    with RayExecutor() as ex:
        reshard([str(root)], tmp_path / "ray", ex, **kw)
        reshard([str(root)], tmp_path / "ray2", ex, tars_per_task=2, **kw)
    assert tree_digest(tmp_path / "ray", OUT_PARTS) == ref
    assert tree_digest(tmp_path / "ray2", OUT_PARTS) == ref
    # a finished reshard is left alone; --overwrite redoes it, to the same bytes
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "inline").rglob("*")}
    reshard([str(root)], tmp_path / "inline", InlineExecutor(), **kw)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "inline").rglob("*")} == mtimes
    reshard([str(root)], tmp_path / "inline", InlineExecutor(), overwrite=True, tars_per_task=3, **kw)
    assert tree_digest(tmp_path / "inline", OUT_PARTS) == ref


def test_several_dedupe_ranges_give_identical_bytes(pool, tmp_path, monkeypatch):
    root, truth = pool
    specs, bucket_of = uid_selection(truth, tmp_path / "uids")
    kw = dict(uid_files=specs, samples_per_shard=7, progress=False)
    reshard([str(root)], tmp_path / "one", InlineExecutor(), **kw)
    monkeypatch.setattr(rs, "DEDUPE_UIDS", 20)
    reshard([str(root)], tmp_path / "many", InlineExecutor(), **kw)
    assert tree_digest(tmp_path / "many", OUT_PARTS) == tree_digest(tmp_path / "one", OUT_PARTS)


def test_output_inside_the_pool_folder_is_not_read_back(tmp_path):
    truth = make_pool(tmp_path / "pool", n_tars=2, per_tar=15)
    specs, bucket_of = uid_selection(truth, tmp_path / "uids")
    out = tmp_path / "pool" / "resharded"
    first = reshard([str(tmp_path / "pool")], out, InlineExecutor(), uid_files=specs, samples_per_shard=2, progress=False)
    assert list((out / "shards").rglob("*.tar"))
    again = reshard([str(tmp_path / "pool")], out, InlineExecutor(), uid_files=specs, samples_per_shard=2, progress=False)
    assert again == first and first["inputs"]["files"] == 2
    check_output(out, truth, bucket_of, ["2014", "2015", "late"], 2)


def test_a_uid_listed_in_two_buckets_is_refused(pool, tmp_path):
    root, truth = pool
    u = truth[0]["uid"]
    write_uid_file(tmp_path / "a.npy", [u])
    write_uid_file(tmp_path / "b.npy", [u, truth[1]["uid"]])
    with pytest.raises(UserError, match="buckets a and b"):
        reshard([str(root)], tmp_path / "out", InlineExecutor(), uid_files=[str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- killed and resumed

SLOW_TASKS = """
import time
import ticdata.reshard as r
_read, _write = r.read_tars, r.write_shard
def slow_read(spec):
    time.sleep(0.4)
    return _read(spec)
def slow_write(spec):
    time.sleep(0.3)
    return _write(spec)
"""

DRIVER = """
import sys, ticdata.reshard as r, slowtasks
from ticdata.executor import InlineExecutor, RayExecutor
r.read_tars, r.write_shard = slowtasks.slow_read, slowtasks.slow_write
pool, out, kind, *uids = sys.argv[1:]
with (RayExecutor(num_cpus=2) if kind == "ray" else InlineExecutor()) as ex:
    r.reshard([pool], out, ex, uid_files=uids, samples_per_shard=7, progress=False)
"""


def _markers(out: Path) -> list[str]:
    d = state_dir(out, "reshard") / "completions"
    return sorted(p.name for p in d.glob("*.json")) if d.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,kill_point",
    [
        pytest.param("inline", lambda m: sum(k.startswith("read-") for k in m) >= 2, id="inline-during-read"),
        pytest.param("inline", lambda m: sum(k.startswith("write-") for k in m) >= 2, id="inline-during-write"),
        pytest.param("ray", lambda m: sum(k.startswith("read-") for k in m) >= 2, id="ray-during-read"),
    ],
)
def test_killed_run_resumes_to_identical_bytes(pool, tmp_path, kind, kill_point, caplog, request):
    root, truth = pool
    specs, _ = uid_selection(truth, tmp_path / "uids")
    reshard([str(root)], tmp_path / "ref", InlineExecutor(), uid_files=specs, samples_per_shard=7, progress=False)
    ref = tree_digest(tmp_path / "ref", OUT_PARTS)
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "slowtasks.py").write_text(SLOW_TASKS)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), str(REPO)])}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(root), str(out), kind, *specs], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and not kill_point(_markers(out)):
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read().decode()[-3000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _markers(out)
    assert done and not (out / "reshard.json").exists()
    with caplog.at_level(logging.INFO, logger="ticdata.executor"):
        reshard([str(root)], out, InlineExecutor(), uid_files=specs, samples_per_shard=7, progress=False)
    stage = "read" if "read" in request.node.callspec.id else "write"
    n = sum(k.startswith(stage + "-") for k in done)
    assert f"{stage}: {n} of " in caplog.text  # the rerun reused the finished tasks
    assert tree_digest(out, OUT_PARTS) == ref
    assert not list(out.rglob(".tmp-*")) and not state_dir(out, "reshard").exists()


# -------------------------------------------------------------------------------- bad input


def test_bad_inputs_fail_before_anything_is_written(pool, tmp_path):
    root, truth = pool
    specs, _ = uid_selection(truth, tmp_path / "uids")
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "nope.tar")], "nope.tar: no such file or folder"),
        ([str(root / "00000000.parquet")], "00000000.parquet: is not a tar file"),
        ([str(root / "{00000000..00000009}.tar")], "00000005.tar: no such file (from the pattern"),
        ([str(tmp_path / "uids")], "no .tar files in this folder"),
        ([str(tmp_path / "*.tar")], "matches no file"),
    ]
    for shards, message in cases:
        with pytest.raises(UserError, match=message.replace("(", r"\(")):
            reshard(shards, out, InlineExecutor(), uid_files=specs)
        assert not out.exists()
    with pytest.raises(UserError, match="one of the two"):
        reshard([str(root)], out, InlineExecutor())
    with pytest.raises(UserError, match="no such uid file"):
        reshard([str(root)], out, InlineExecutor(), uid_files=[str(tmp_path / "missing.npy")])
    with pytest.raises(UserError, match="no manifest.json"):
        reshard([str(root)], out, InlineExecutor(), manifest=tmp_path)
    assert not out.exists()
    # another reshard's output is not replaced without overwrite
    reshard([str(root)], out, InlineExecutor(), uid_files=specs[:1], progress=False)
    with pytest.raises(UserError, match="pass --overwrite"):
        reshard([str(root)], out, InlineExecutor(), uid_files=specs, progress=False)
    assert list(json.loads((out / "reshard.json").read_text())["buckets"]) == ["2014"]


@pytest.mark.parametrize("executor", ["inline", "ray"])
def test_a_tar_damaged_mid_file_is_named(pool, tmp_path, executor, request):
    root, truth = pool
    bad = tmp_path / "pool" / "00000002.tar"
    bad.parent.mkdir()
    for t in range(3):
        (tmp_path / "pool" / f"0000000{t}.tar").write_bytes((root / f"0000000{t}.tar").read_bytes())
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2 + 100])  # truncated inside a member
    specs, _ = uid_selection(truth, tmp_path / "uids")
    plan_reshard([str(tmp_path / "pool")], tmp_path / "out", uid_files=specs)  # the first header is fine
    if executor == "ray":
        request.getfixturevalue("ray_local")
    with (RayExecutor() if executor == "ray" else InlineExecutor()) as ex:
        with pytest.raises(UserError) as e:
            reshard([str(tmp_path / "pool")], tmp_path / "out", ex, uid_files=specs, progress=False)
    msg = str(e.value)
    assert "00000002.tar" in msg and "truncated" in msg and "\n" not in msg
    # bad checksum (garbage in a header) is named too
    cut = bytearray(data)
    cut[len(data) // 2 - (len(data) // 2) % 512: len(data) // 2 - (len(data) // 2) % 512 + 512] = b"\x07" * 512
    bad.write_bytes(bytes(cut))
    with pytest.raises(UserError, match=r"00000002.tar: (bad|truncated)"):
        reshard([str(tmp_path / "pool")], tmp_path / "out2", InlineExecutor(), uid_files=specs, progress=False)


# ------------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("pattern", [
    "pool/{00000000..00000012}.tar", "a{b,c}d{1..3}", "x{9..11}", "{a,b{1,2}}z", "{05..1}", "no-braces.tar",
    "{-1..2}", "s{a..c}", "{1..10..3}", "lit{x}.tar",
])
def test_braceexpand_matches_the_package_webdataset_uses(pattern):
    braceexpand_pkg = pytest.importorskip("braceexpand")
    assert braceexpand(pattern) == list(braceexpand_pkg.braceexpand(pattern))


def _tar_with_every_kind(path: Path, fmt: int, compress: str = "") -> list[tuple[str, bytes]]:
    rnd = random.Random(fmt)
    want = []
    mode = "w:" + compress if compress else "w"
    with tarfile.open(path, mode, format=fmt) as tf:
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        names = ["a.jpg", "k" * 120 + ".json", "dir/b.txt", "ünï/cödé.txt", "x" * 90 + "/" + "y" * 90 + ".npy", "empty.txt"]
        for i, name in enumerate(names):
            if fmt == tarfile.USTAR_FORMAT and (not name.isascii() or len(name) > 100 and "/" not in name):
                continue
            data = b"" if name == "empty.txt" else rnd.randbytes(rnd.choice([1, 511, 512, 513, 3000]))
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
            want.append((name, data))
            if i == 2:
                ln = tarfile.TarInfo("link")
                ln.type, ln.linkname = tarfile.SYMTYPE, "a.jpg"
                tf.addfile(ln)
    return want


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("compress", ["", "gz"])
def test_tar_reader_matches_tarfile(tmp_path, fmt, compress):
    path = tmp_path / "t.tar"
    want = _tar_with_every_kind(path, fmt, compress)
    skipped = [0]
    assert list(iter_members(path, skipped)) == want
    assert skipped[0] == 2  # the folder and the symlink


def test_written_headers_are_fixed_and_read_back(tmp_path):
    names = ["0123456789abcdef0123456789abcdef.jpg", "u" * 32 + ".seg.png", "u" * 32 + "." + "e" * 90, "u" * 32 + ".ñpy"]
    path = tmp_path / "w.tar"
    from ticdata.tars import TarWriter

    with open(path, "wb") as fh:
        w = TarWriter(fh)
        for i, n in enumerate(names):
            w.add(n, bytes([i]) * (i * 300))
        w.close()
    assert path.stat().st_size % 10240 == 0
    with tarfile.open(path) as tf:
        got = [(m.name, m.size, m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tf.getmembers()]
    assert got == [(n, i * 300, 0, 0, 0, "", "", 0o644) for i, n in enumerate(names)]
    assert list(iter_members(path)) == [(n, bytes([i]) * (i * 300)) for i, n in enumerate(names)]
    assert member_header(names[0], 5) == member_header(names[0], 5)
    assert hashlib.sha256(member_header(names[0], 5)).hexdigest() == hashlib.sha256(member_header(names[0], 5)).hexdigest()
    res = subprocess.run(["tar", "-tvf", str(path)], capture_output=True, text=True)
    if res.returncode == 0:  # GNU tar reads it too, where installed
        assert len(res.stdout.splitlines()) == len(names)


def test_tar_errors_say_where(tmp_path):
    p = tmp_path / "x.tar"
    p.write_bytes(b"\x07" * 1024)
    with pytest.raises(TarError, match="checksum at byte 0"):
        list(iter_members(p))


@pytest.mark.slow
def test_bench_script_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_reshard.py"), "--tars", "4", "--samples", "200", "--repeats", "1",
         "--workdir", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "reshard/tarfile-copy" in res.stdout
    assert not (tmp_path / "bench").exists()


def test_cli_reshards_the_downloaded_world_by_its_manifest(tmp_path, capsys):
    """`tic reshard SHARDS --manifest DIR` on shards that `tic download` wrote: the same samples."""
    from ticdata.cli import main
    from ticdata.curate import CurateConfig, curate
    from ticdata.download import DownloadConfig, download
    from ticdata.executor import InlineExecutor
    from ticdata.fetch import FetchPolicy
    from ticdata.serve import ImageServer
    from ticdata.synth.world import make_world

    with ImageServer() as server:
        make_world(tmp_path / "world", seed=2, base_url=server.url, pairs_per_step=20, fail_share=0.0, link_rot=False)
        cur = tmp_path / "cur"
        curate(CurateConfig(inputs=(str(tmp_path / "world"),), out=cur, benchmark="demo", progress=False), InlineExecutor())
        download(DownloadConfig(dir=cur, image_size=32, samples_per_shard=16, threads=4, progress=False,
                                policy=FetchPolicy(allow_private_hosts=True)), InlineExecutor())  # fmt: skip
    code = main(["-q", "reshard", str(cur / "shards"), "--manifest", str(cur), "--out", str(tmp_path / "re"),
                 "--executor", "inline", "--samples-per-shard", "25"])  # fmt: skip
    assert code == 0
    assert "ledger: read 100 = selected 100" in capsys.readouterr().out
    for bucket in ("2014-2016", "2019", "2021-2022"):
        src = {k for t in (cur / "shards" / bucket).glob("*.tar") for k in {m.split(".")[0] for m in tarfile.open(t).getnames()}}
        dst = {k for t in (tmp_path / "re" / "shards" / bucket).glob("*.tar") for k in {m.split(".")[0] for m in tarfile.open(t).getnames()}}
        assert src == dst and len(src) == 20
