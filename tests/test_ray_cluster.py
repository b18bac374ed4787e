"""On a real two-node Ray cluster: `tic curate --ray-address` gives the bytes of a local run, and
`tic download --ray-address` spreads its shards over both nodes and collects every status.
(One cluster for both: starting one costs most of this test's time.)"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tree_digest
from ray_cluster import two_node_cluster
from ticdata.layout import done_mark
from ticdata.synth.pool import make_pool

TIC = str(Path(sys.executable).with_name("tic"))


@pytest.mark.slow
def test_two_node_cluster_matches_local_run(tmp_path):
    pool = tmp_path / "pool"
    make_pool(pool, rows=40_000, seed=5, rows_per_file=10_000, row_group_rows=2_500)
    flags = ["--chunk-rows", "5000", "--partition-rows", "8000", "-q"]
    local = subprocess.run([TIC, "curate", str(pool), "--out", str(tmp_path / "local"), *flags], capture_output=True, text=True)
    assert local.returncode == 0, local.stderr
    token = secrets.token_hex(32)
    with two_node_cluster(tmp_path, token) as (address, nodes):
        assert len(nodes) == 2
        assert all(n["ip"].startswith("127.") for n in nodes), nodes
        assert {n["ip"] for n in nodes} == {"127.0.0.2", "127.0.0.3"}
        out = tmp_path / "cluster"
        res = subprocess.run(
            [TIC, "curate", str(pool), "--out", str(out), "--ray-address", address, *flags],
            capture_output=True, text=True, timeout=600,
            env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {"RAY_AUTH_TOKEN": token},
        )
        assert res.returncode == 0, res.stderr
        downloaded = _download_on(address, token, tmp_path)
    assert tree_digest(out) == tree_digest(tmp_path / "local")
    # Both nodes did work: every completion marker names the node that ran the task.
    ran_on = json.loads(done_mark(out, "curate").read_text())["tasks_by_node"]
    assert set(ran_on) == {n["id"] for n in nodes}, (ran_on, nodes)
    # Download: shards ran on both nodes, every row has a status, failures are the failure URLs.
    import polars as pl

    from ticdata.manifest import scan_manifest

    man = scan_manifest(downloaded).collect()
    assert man["status"].null_count() == 0
    assert set(man.filter(~pl.col("url").str.contains("/fail/"))["status"]) == {"success"}
    ran_on = json.loads(done_mark(downloaded, "download").read_text())["tasks_by_node"]
    assert sum(ran_on.values()) >= 4 and set(ran_on) == {n["id"] for n in nodes}


def _download_on(address: str, token: str, tmp_path: Path) -> Path:
    from ticdata.curate import CurateConfig, curate
    from ticdata.executor import InlineExecutor
    from ticdata.serve import ImageServer
    from ticdata.synth.world import make_world

    with ImageServer() as server:
        make_world(tmp_path / "world", seed=3, base_url=server.url, pairs_per_step=40, fail_share=0.1)
        out = tmp_path / "world-cur"
        curate(CurateConfig(inputs=(str(tmp_path / "world"),), out=out, benchmark="demo", progress=False), InlineExecutor())
        res = subprocess.run(
            [TIC, "download", str(out), "--ray-address", address, "--allow-private-hosts", "--samples-per-shard", "10",
             "--image-size", "32", "--timeout", "2", "-q"],
            capture_output=True, text=True, timeout=600,
            env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {"RAY_AUTH_TOKEN": token},
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
    return out
