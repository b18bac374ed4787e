"""The RedCaps reader on small annotation files, plain and gzip."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.sources import detect_kind, inspect_inputs, redcaps

COLS = ColumnMap()


def ann(image_id, caption, raw, created, **kw) -> dict:
    return {
        "image_id": image_id,
        "author": kw.get("author", "someone"),
        "url": f"https://i.redd.it/{image_id}.jpg",
        "raw_caption": raw,
        "caption": caption,
        "subreddit": kw.get("subreddit", "itookapicture"),
        "score": 12,
        "created_utc": created,
        "permalink": f"/r/itookapicture/comments/{image_id}/x/",
    }


DOC = {
    "info": {"url": "https://redcaps.xyz", "version": "1.0", "subreddit": "itookapicture", "year": 2019},
    "annotations": [
        ann("a1", "itap of a red fox", "ITAP of a red fox!", 1546300800.0),
        ann("b2", None, "ITAP of snow", 1546387200.5),  # caption null: removed by RedCaps, no text (not raw_caption)
        ann("c3", "", "my cat", 1546473600),  # empty caption: removed, no text; an int time is still a float
        ann(42, "numeric id", "x", "1546560000.0"),  # ids and times as Reddit dumps sometimes give them
        ann("e5", "no time", "x", None),
    ],
}


def write(path: Path, doc, compress: bool = False) -> Path:
    data = json.dumps(doc, indent=1).encode() if not isinstance(doc, bytes) else doc
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_reads_annotations(tmp_path, compress):
    path = write(tmp_path / ("itookapicture_2019.json" + (".gz" if compress else "")), DOC, compress)
    assert detect_kind(path) == "redcaps"
    f = redcaps.inspect(path, COLS)
    assert f.rows == 5
    assert redcaps.chunks(f, 2) == [()]
    df, stats = redcaps.read(f, (), COLS)
    assert stats == {}
    assert df.columns == f.columns == ["url", "text", "created_utc", "image_id", "subreddit", "author", "permalink"]
    assert df.schema["created_utc"] == pl.Float64
    assert df["text"].to_list() == ["itap of a red fox", None, "", "numeric id", "no time"]
    assert df["created_utc"].to_list() == [1546300800.0, 1546387200.5, 1546473600.0, 1546560000.0, None]
    assert df["image_id"].to_list() == ["a1", "b2", "c3", "42", "e5"]
    first = df.row(0, named=True)
    assert first["url"] == "https://i.redd.it/a1.jpg"
    assert first["subreddit"] == "itookapicture" and first["author"] == "someone"
    assert first["permalink"] == "/r/itookapicture/comments/a1/x/"


def test_empty_annotations_give_an_empty_frame(tmp_path):
    path = write(tmp_path / "empty.json", {"info": {}, "annotations": []})
    f = redcaps.inspect(path, COLS)
    df, _ = redcaps.read(f, (), COLS)
    assert df.height == 0 and df.columns == f.columns


@pytest.mark.parametrize(
    "content",
    [
        b'{"info": {}, "annotations": [{"url": "https://i.redd.it/x.jpg", ',  # cut short
        b'{"info": {}, "annotations": {"url": "x"}}',  # not a list
        b'{"info": {}, "items": []}',  # no annotations
        b'{"info": {}, "annotations": ["just a string"]}',  # entries are not objects
        b"[1, 2, 3]",
    ],
)
def test_bad_files_are_user_errors(tmp_path, content):
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(UserError) as e:
        redcaps.inspect(path, COLS)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_gzip_is_a_user_error(tmp_path):
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(json.dumps(DOC).encode())[:-30])
    with pytest.raises(UserError) as e:
        redcaps.inspect(path, COLS)
    assert str(path) in str(e.value)


def test_sniff_needs_annotations_key(tmp_path):
    path = write(tmp_path / "other.json", {"info": {}, "rows": []})
    with pytest.raises(UserError):
        detect_kind(path)


def test_inspect_inputs(tmp_path):
    write(tmp_path / "a.json", DOC)
    write(tmp_path / "b.json.gz", DOC, compress=True)
    files = inspect_inputs([str(tmp_path)], COLS)
    assert [(Path(f.path).name, f.kind, f.rows) for f in files] == [("a.json", "redcaps", 5), ("b.json.gz", "redcaps", 5)]


def test_mixed_folder_each_file_gets_its_reader(tmp_path):
    """The sniffers do not claim each other's files (registry order: parquet, warc, yfcc, redcaps)."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"url": ["https://x/1.jpg"], "text": ["one"]}), tmp_path / "pool.parquet")
    shutil.copy("/work/shared/data/commoncrawl/whirlwind.warc.gz", tmp_path / "crawl.warc.gz")
    (tmp_path / "yfcc.tsv").write_bytes(b"downloadurl\ttitle\tdateuploaded\nhttp://x/1.jpg\tt\t1300000000\n")
    write(tmp_path / "redcaps.json", DOC)
    write(tmp_path / "tabbed.json", b'{\t"info": {},\t"annotations": []}')
    kinds = {Path(f.path).name: f.kind for f in inspect_inputs([str(tmp_path)], COLS)}
    assert kinds == {
        "pool.parquet": "parquet",
        "crawl.warc.gz": "warc",
        "yfcc.tsv": "yfcc",
        "redcaps.json": "redcaps",
        "tabbed.json": "redcaps",
    }
