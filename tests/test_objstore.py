"""Curation from and to an S3-compatible object store (moto's server on 127.0.0.1, started here).

DataComp's metadata lives on S3: `tic curate s3://... --out s3://...` must write the same bytes as
a curation on local disk, keep its job state (plan, completion markers, task outputs) on the store,
and resume there after a kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ticdata.synth.pool import make_pool

TIC = str(Path(sys.executable).with_name("tic"))
BUCKET = "tic-test"
FLAGS = ["--chunk-rows", "2000", "--partition-rows", "4000", "--executor", "inline"]

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A moto S3 server on loopback, one bucket, and the environment that points tic at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_ENDPOINT_URL_S3", None)
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", access_key="testing",
                           secret_key="testing", region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    yield fs, env
    server.stop()


@pytest.fixture(scope="module")
def pools(store, tmp_path_factory):
    """The same synthetic pool on local disk and under s3://tic-test/pool/."""
    fs, _ = store
    local = tmp_path_factory.mktemp("pool")
    make_pool(local, rows=12_000, seed=5, rows_per_file=4_000, row_group_rows=1_000)
    for f in sorted(local.rglob("*")):
        if f.is_file():
            with fs.open_output_stream(f"{BUCKET}/pool/{f.relative_to(local).as_posix()}") as fh:
                fh.write(f.read_bytes())
    return local, f"s3://{BUCKET}/pool"


def _objects(fs, prefix: str) -> dict[str, bytes]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True))
    out = {}
    for i in infos:
        if i.type == pafs.FileType.File:
            try:
                with fs.open_input_stream(i.path) as fh:
                    out[i.path[len(f"{BUCKET}/{prefix}/"):]] = fh.read()
            except FileNotFoundError:  # listed, then removed by the run being watched (a probe, a temp name)
                continue
    return out


def _local(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _without_input_paths(raw: bytes) -> dict:
    doc = json.loads(raw)
    for f in doc["inputs"]["files"]:
        f["path"] = Path(f["path"]).name
    return doc


def _tic(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([TIC, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def local_curation(pools, tmp_path_factory):
    local_pool, _ = pools
    out = tmp_path_factory.mktemp("local") / "curated"
    res = subprocess.run([TIC, "curate", str(local_pool), "--out", str(out), "-q", *FLAGS], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return _local(out)


def _assert_same_curation(remote: dict[str, bytes], local: dict[str, bytes]) -> None:
    parquet = sorted(k for k in local if k.startswith("manifest/"))
    assert len(parquet) > 5
    assert sorted(k for k in remote if k.startswith("manifest/")) == parquet
    for k in parquet:
        assert hashlib.sha256(remote[k]).digest() == hashlib.sha256(local[k]).digest(), k
    # manifest.json: the same document but for where the inputs were read from
    assert _without_input_paths(remote["manifest.json"]) == _without_input_paths(local["manifest.json"])
    assert json.loads(remote["manifest.json"])["inputs"]["files"][0]["path"].startswith(f"s3://{BUCKET}/pool/")


def test_curate_from_and_to_s3_writes_the_same_bytes_as_local_disk(store, pools, local_curation):
    fs, env = store
    _, remote_pool = pools
    res = _tic(env, "curate", remote_pool, "--out", f"s3://{BUCKET}/curated", "-q", *FLAGS)
    assert res.returncode == 0, res.stderr
    remote = _objects(fs, "curated")
    _assert_same_curation(remote, local_curation)
    # the job's state is gone, its done mark stays (as on local disk)
    assert ".tic/curate.done.json" in remote and not [k for k in remote if k.startswith(".tic/curate/")]
    # a rerun of the finished curation changes nothing
    res = _tic(env, "curate", remote_pool, "--out", f"s3://{BUCKET}/curated", *FLAGS)
    assert res.returncode == 0 and "nothing to do" in res.stderr, res.stderr
    assert _objects(fs, "curated") == remote


@pytest.mark.slow
def test_a_run_killed_on_s3_resumes_from_the_state_kept_there(store, pools, local_curation):
    """Kill the run once some tasks have finished: the plan and completion markers stay on the store,
    and the rerun (as from another machine: nothing local is kept) skips those tasks."""
    fs, env = store
    _, remote_pool = pools
    out = f"s3://{BUCKET}/resumed"
    args = ["curate", remote_pool, "--out", out, *FLAGS]
    proc = subprocess.Popen([TIC, *args], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    markers: list[str] = []
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            markers = [k for k in _objects(fs, "resumed") if k.startswith(".tic/curate/completions/")]
            if len(markers) >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before the kill: " + proc.stderr.read().decode()[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = _objects(fs, "resumed")
    assert ".tic/curate/plan.json" in state and ".tic/curate.done.json" not in state
    assert any(k.startswith(".tic/curate/work/map/") for k in state)  # task outputs live on the store too
    res = _tic(env, *args)
    assert res.returncode == 0, res.stderr
    assert "resuming an unfinished curate" in res.stderr
    done_before = int(res.stderr.split(" of ")[0].rsplit(" ", 1)[-1]) if " tasks already complete" in res.stderr else 0
    assert done_before >= len(markers) >= 3, res.stderr
    _assert_same_curation(_objects(fs, "resumed"), local_curation)


def test_a_missing_bucket_is_named_in_one_line(store, pools):
    _, env = store
    local_pool = str(pools[0])
    res = _tic(env, "curate", local_pool, "--out", "s3://no-such-bucket/curated", *FLAGS)
    assert res.returncode != 0
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "s3://no-such-bucket/curated" in lines[0] and "Traceback" not in res.stderr, res.stderr
    res = _tic(env, "curate", f"s3://{BUCKET}/no-pool-here", "--out", f"s3://{BUCKET}/x", *FLAGS)
    assert res.returncode != 0 and "s3://tic-test/no-pool-here" in res.stderr and "Traceback" not in res.stderr, res.stderr
