"""One curation over every input kind at once: WARC, YFCC, RedCaps and Parquet, on Ray."""

from __future__ import annotations

import gzip
import json
import shutil

import polars as pl

from conftest import SHARED_DATA
from test_sources_yfcc import header_tsv
from ticdata.curate import CurateConfig, curate
from ticdata.executor import RayExecutor
from ticdata.ledger import Ledger
from ticdata.manifest import scan_manifest
from ticdata.recover import uid_of


def test_every_source_in_one_run(tmp_path, ray_local):
    inputs = tmp_path / "in"
    (inputs / "crawl-data" / "CC-MAIN-2024-22").mkdir(parents=True)
    shutil.copy(SHARED_DATA / "commoncrawl" / "whirlwind.warc.gz", inputs / "crawl-data" / "CC-MAIN-2024-22" / "w.warc.gz")
    (inputs / "yfcc.tsv.gz").write_bytes(gzip.compress(header_tsv()))
    redcaps = {
        "info": {"subreddit": "pics"},
        "annotations": [
            {"image_id": "a1", "author": "u", "url": "https://i.redd.it/a1.jpg", "raw_caption": "Raw", "caption": "my cat",
             "subreddit": "pics", "score": 3, "created_utc": 1546300800.0, "permalink": "/r/pics/a1"},
            {"image_id": "a2", "author": "u", "url": "https://i.redd.it/a2.jpg", "raw_caption": "", "caption": "",
             "subreddit": "pics", "score": 1, "created_utc": 1577836800.0, "permalink": "/r/pics/a2"},
        ],
    }  # fmt: skip
    (inputs / "pics_2019.json").write_text(json.dumps(redcaps))
    # A DataComp-style row re-sighting the RedCaps cat earlier, via its computed uid.
    cat_uid = uid_of("https://i.redd.it/a1.jpg", "my cat")
    pl.DataFrame({"uid": [cat_uid], "url": ["https://i.redd.it/a1.jpg"], "text": ["my cat"], "source": ["crawl-data/CC-MAIN-2017-04/x"]}).write_parquet(
        inputs / "pool.parquet"
    )
    doc = curate(CurateConfig(inputs=(str(inputs),), out=tmp_path / "out", progress=False), RayExecutor())

    assert Ledger.balanced(doc["ledger"])
    kinds = doc["inputs"]["by_kind"]
    assert set(kinds) == {"warc", "yfcc", "redcaps", "parquet"}
    assert kinds["warc"]["images_without_alt"] > 0
    assert doc["ledger"]["dropped"]["video"] == 1  # the YFCC video row is an input row, dropped with its reason
    assert doc["ledger"]["dropped"]["missing_text"] == 1  # the RedCaps post without a caption
    df = scan_manifest(tmp_path / "out").collect()
    escudo = df.filter(pl.col("text") == "Escudo d'armas").row(0, named=True)
    assert escudo["url"].startswith("https://upload.wikimedia.org/")
    assert escudo["first_snapshot"] == "CC-MAIN-2024-22" and escudo["ts_signal"] == "crawl_time"
    assert escudo["ts"].isoformat() == "2024-05-18T01:58:10+00:00"
    assert escudo["uid"] == uid_of(escudo["url"], escudo["text"])
    cat = df.filter(pl.col("uid") == cat_uid).row(0, named=True)
    assert cat["n_seen"] == 2 and cat["year"] == 2017 and cat["ts_signal"] == "snapshot"  # the earlier sighting wins
    golden = df.filter(pl.col("photoid") == "1001").row(0, named=True)
    assert golden["ts_signal"] == "dateuploaded" and golden["year"] == 2005
    assert {"page_url", "photoid", "subreddit"} <= set(df.columns)
