"""The YFCC100M reader on small files in both layouts (YFCC15M header TSV, headerless 25 columns)."""

from __future__ import annotations

import gzip
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticdata.columns import ColumnMap
from ticdata.errors import UserError
from ticdata.sources import detect_kind, inspect_inputs, yfcc

COLS = ColumnMap()
HEADER = (
    "photoid uid unickname datetaken dateuploaded capturedevice title description usertags machinetags "
    "longitude latitude accuracy pageurl downloadurl licensename licenseurl serverid farmid secret "
    "secretoriginal ext marker key"
).split()

# (photoid, datetaken, dateuploaded, title, description, marker)
PHOTOS = [
    ("1001", "2005-11-26 15:21:46.0", "1133024344", "Golden+Gate+%26+fog", "Taken+from+%3Cb%3Ethe+bridge%3C%2Fb%3E+%26amp%3B+bay", "0"),
    ("1002", "2007-01-02 03:04:05.0", "1167707045", "caf%C3%A9", "", "0"),
    ("1003", "2008-05-05 10:00:00.0", "1209981600", "a+video", "moving", "1"),
    ("1004", "2009-07-07 07:07:07.0", "not-a-date", "Lake", "calm++water", "0"),
    ("1005", "2010-01-01 00:00:00.0", "", "", "only+a+description", "0"),
]
EXPECTED = {
    "1001": ("Golden Gate & fog. Taken from the bridge & bay", 1133024344),
    "1002": ("café", 1167707045),
    "1004": ("Lake. calm water", None),
    "1005": ("only a description", None),
}


def _row(photoid, datetaken, uploaded, title, desc, marker) -> dict[str, str]:
    return {
        "photoid": photoid, "uid": "12345@N00", "unickname": "nick", "datetaken": datetaken, "dateuploaded": uploaded,
        "capturedevice": "Canon", "title": title, "description": desc, "usertags": "a,b", "machinetags": "",
        "longitude": "", "latitude": "", "accuracy": "", "pageurl": f"http://www.flickr.com/photos/nick/{photoid}/",
        "downloadurl": f"http://farm1.staticflickr.com/1/{photoid}_abc.jpg", "licensename": "Attribution License",
        "licenseurl": "http://creativecommons.org/licenses/by/2.0/", "serverid": "1", "farmid": "1", "secret": "abc",
        "secretoriginal": "def", "ext": "jpg", "marker": marker, "key": f"k{photoid}", "hash": "f" * 32,
    }  # fmt: skip


def header_tsv(rows=PHOTOS, header=HEADER) -> bytes:
    lines = ["\t".join(header)] + ["\t".join(_row(*r)[h] for h in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def full_tsv(rows=PHOTOS, trailing_newline=True) -> bytes:
    lines = ["\t".join([str(i)] + [_row(*r)[c] for c in yfcc.FULL_COLUMNS[1:]]) for i, r in enumerate(rows)]
    return ("\n".join(lines) + ("\n" if trailing_newline else "")).encode()


def read_all(path: Path, chunk_rows: int = 1000):
    f = yfcc.inspect(path, COLS)
    frames, videos = [], 0
    for spec in yfcc.chunks(f, chunk_rows):
        df, stats = yfcc.read(f, spec, COLS)
        assert df.columns == f.columns == ["url", "text", "dateuploaded", "photoid", "pageurl", "datetaken", "licensename"]
        assert df.schema["dateuploaded"] == pl.Int64
        frames.append(df)
        videos += stats["dropped:video"]
    return pl.concat(frames), videos


def check(df: pl.DataFrame, videos: int) -> None:
    assert videos == 1
    got = {r["photoid"]: (r["text"], r["dateuploaded"]) for r in df.iter_rows(named=True)}
    assert got == EXPECTED
    row = df.filter(pl.col("photoid") == "1001").row(0, named=True)
    assert row["url"] == "http://farm1.staticflickr.com/1/1001_abc.jpg"
    assert row["pageurl"] == "http://www.flickr.com/photos/nick/1001/"
    assert row["datetaken"] == "2005-11-26 15:21:46.0"
    assert row["licensename"] == "Attribution License"


@pytest.mark.parametrize("compress", [False, True])
def test_header_tsv(tmp_path, compress):
    path = tmp_path / ("yfcc15m.tsv" + (".gz" if compress else ""))
    data = header_tsv()
    path.write_bytes(gzip.compress(data) if compress else data)
    assert detect_kind(path) == "yfcc"
    check(*read_all(path))


@pytest.mark.parametrize("compress", [False, True])
def test_headerless_25_columns(tmp_path, compress):
    path = tmp_path / ("yfcc100m_dataset" + ("-0.bz.gz" if compress else ""))
    data = full_tsv()
    path.write_bytes(gzip.compress(data) if compress else data)
    assert detect_kind(path) == "yfcc"
    check(*read_all(path))


def test_header_order_and_crlf_do_not_matter(tmp_path):
    path = tmp_path / "shuffled.tsv"
    header = list(reversed(HEADER))
    path.write_bytes(header_tsv(header=header).replace(b"\n", b"\r\n"))
    check(*read_all(path))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 12),
    chunk_rows=st.integers(1, 7),
    trailing_newline=st.booleans(),
    compress=st.booleans(),
    header=st.booleans(),
    block=st.sampled_from([1, 2, 5, 33, 1 << 20]),
)
def test_chunks_cover_every_line_once(tmp_path_factory, n, chunk_rows, trailing_newline, compress, header, block):
    rows = [(str(2000 + i), "2010-01-01", str(1262304000 + i), f"t{i}", "", "0") for i in range(n)]
    data = header_tsv(rows) if header else full_tsv(rows, trailing_newline)
    if header and not trailing_newline and n:
        data = data.rstrip(b"\n")
    if not header and n == 0:
        data = header_tsv([])  # a headerless file needs one line to be recognised
    path = tmp_path_factory.mktemp("chunks") / "f.tsv"
    path.write_bytes(gzip.compress(data) if compress else data)
    f = yfcc.inspect(path, COLS)
    saved, yfcc.BLOCK, yfcc.SAMPLE = (yfcc.BLOCK, yfcc.SAMPLE), block, block  # line ends on every side of a block edge
    try:
        specs = yfcc.chunks(f, chunk_rows)
    finally:
        yfcc.BLOCK, yfcc.SAMPLE = saved
    _, offset = yfcc._layout(path)
    if compress:  # (offset, n lines) runs, as a line-by-line reference finds them
        assert specs == naive_runs(data, offset, chunk_rows)
    else:  # contiguous byte ranges over the records
        assert specs[0][0] == offset and specs[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in pairwise(specs)) and (all(s < e for s, e in specs) or specs == [(offset, offset)])
    f_frames = [yfcc.read(f, spec, COLS)[0] for spec in specs]
    df = pl.concat(f_frames)
    assert df["photoid"].to_list() == [r[0] for r in rows]
    assert df["dateuploaded"].to_list() == [int(r[2]) for r in rows]


def naive_runs(data: bytes, offset: int, chunk_rows: int) -> list[tuple[int, int]]:
    """The (offset, n lines) runs of the gzip scheme, one line at a time."""
    starts = [offset]
    for i in range(offset, len(data)):
        if data[i : i + 1] == b"\n" and i + 1 < len(data):
            starts.append(i + 1)
    if len(data) == offset:
        return [(offset, 0)]
    runs = [(starts[i], min(chunk_rows, len(starts) - i)) for i in range(0, len(starts), chunk_rows)]
    return runs


def test_missing_required_column_names_file_and_column(tmp_path):
    path = tmp_path / "nourl.tsv"
    path.write_bytes(header_tsv(header=[h for h in HEADER if h != "downloadurl"]))
    with pytest.raises(UserError) as e:
        yfcc.inspect(path, COLS)
    assert str(path) in str(e.value) and "downloadurl" in str(e.value)


def test_optional_columns_may_be_absent(tmp_path):
    path = tmp_path / "minimal.tsv"
    path.write_bytes(b"downloadurl\ttitle\tdateuploaded\nhttp://x/1.jpg\tHello+world\t1300000000\n")
    df, videos = read_all(path)
    assert videos == 0
    assert df.row(0, named=True) == {
        "url": "http://x/1.jpg", "text": "Hello world", "dateuploaded": 1300000000,
        "photoid": None, "pageurl": None, "datetaken": None, "licensename": None,
    }  # fmt: skip


def test_not_yfcc(tmp_path):
    path = tmp_path / "three.tsv"
    path.write_bytes(b"a\tb\tc\n1\t2\t3\n")
    with pytest.raises(UserError):
        detect_kind(path)
    with pytest.raises(UserError) as e:
        yfcc.inspect(path, COLS)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_inspect_inputs(tmp_path):
    (tmp_path / "a.tsv").write_bytes(header_tsv())
    (tmp_path / "b.gz").write_bytes(gzip.compress(full_tsv()))
    files = inspect_inputs([str(tmp_path)], COLS)
    assert [(Path(f.path).name, f.kind, f.rows) for f in files] == [("a.tsv", "yfcc", None), ("b.gz", "yfcc", None)]
    assert dict(files[0].schema)["dateuploaded"] == pl.Int64
