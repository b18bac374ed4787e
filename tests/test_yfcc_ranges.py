"""Byte-range chunks of a plain YFCC file: wherever the cuts fall, every line is read by exactly one
task, in file order, so a curation's output does not depend on --chunk-rows."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import polars as pl
import pytest
from test_sources_yfcc import COLS, HEADER, _row

from ticdata.curate import CurateConfig, curate
from ticdata.executor import InlineExecutor
from ticdata.sources import yfcc

BODIES = [
    b"ab\ncd\nef\n",  # every line ends with a newline
    b"ab\ncd\nef",  # a final line without newline
    b"\n\nab\n\n\ncd\n\n",  # blank lines, at the start, inside and at the end
    b"ab\r\ncd\r\n\r\nef\r\n",  # CRLF, a blank CRLF line
    b"a\nb\nc\nd\n",  # one-byte lines: a cut lands on every newline and just after it
    b"x",  # one line, no newline
    b"",
]


def owned(data: bytes, offset: int, start: int, end: int) -> bytes:
    return yfcc._owned(io.BytesIO(data), offset, start, end)


def is_whole_lines(data: bytes, offset: int, piece: bytes) -> bool:
    """piece is a run of whole lines of data[offset:] (found where it can start)."""
    if not piece:
        return True
    starts = [offset] + [i + 1 for i in range(offset, len(data)) if data[i : i + 1] == b"\n"]
    return any(data[s : s + len(piece)] == piece and (s + len(piece) == len(data) or piece.endswith(b"\n")) for s in starts)


@pytest.mark.parametrize("header", [b"", b"h1\th2\n", b"h1\th2\r\n"])
@pytest.mark.parametrize("body", BODIES)
def test_every_pair_of_cuts_gives_every_byte_to_one_range(header, body):
    data = header + body
    offset = len(header)
    for a in range(offset, len(data) + 1):
        for b in range(a, len(data) + 1):
            pieces = [owned(data, offset, s, e) for s, e in ((offset, a), (a, b), (b, len(data)))]
            assert b"".join(pieces) == body, (a, b, pieces)
            assert all(is_whole_lines(data, offset, p) for p in pieces), (a, b, pieces)


def test_a_line_starting_exactly_at_the_cut_belongs_to_the_later_range():
    data = b"ab\ncd\nef\n"
    assert owned(data, 0, 0, 3) == b"ab\n" and owned(data, 0, 3, 9) == b"cd\nef\n"  # cut just after a newline
    assert owned(data, 0, 0, 2) == b"ab\n" and owned(data, 0, 2, 9) == b"cd\nef\n"  # cut at the newline
    assert owned(data, 0, 0, 4) == b"ab\ncd\n" and owned(data, 0, 4, 9) == b"ef\n"  # cut inside a line
    assert owned(data, 0, 4, 5) == b""  # a range inside one line owns nothing


def test_clean_matches_the_line_by_line_rule():
    for body in BODIES + [b"a\r\r\nb", b"\r\n\r\n", b"a\n \nb\n"]:
        want = b"".join(line.rstrip(b"\r\n") + b"\n" for line in io.BytesIO(body) if line.strip(b"\r\n"))
        assert yfcc._clean(body) == want, body


def small_header_tsv(n: int, newline: bytes = b"\n", blanks: bool = False) -> bytes:
    lines = [b"downloadurl\ttitle\tdateuploaded\tphotoid"]
    for i in range(n):
        lines.append(f"http://x/{i}.jpg\tt{i}\t{1300000000 + i}\t{i}".encode())
        if blanks and i % 3 == 1:
            lines.append(b"")
    return newline.join(lines) + newline


def photoids(path: Path, specs) -> list[str]:
    f = yfcc.inspect(path, COLS)
    return pl.concat([yfcc.read(f, spec, COLS)[0] for spec in specs])["photoid"].to_list()


@pytest.mark.parametrize("newline,blanks,trailing", [(b"\n", False, True), (b"\r\n", True, True), (b"\n", True, False)])
def test_read_with_a_cut_at_every_position(tmp_path, newline, blanks, trailing):
    data = small_header_tsv(4, newline, blanks)
    data = data if trailing else data.rstrip(b"\r\n")
    path = tmp_path / "y.tsv"
    path.write_bytes(data)
    _, offset = yfcc._layout(path)
    assert data[:offset].startswith(b"downloadurl")
    for cut in range(offset, len(data) + 1):
        assert photoids(path, [(offset, cut), (cut, len(data))]) == ["0", "1", "2", "3"], cut


def test_headerless_25_columns_cut_around_every_newline(tmp_path):
    rows = [(str(3000 + i), "2010-01-01", str(1262304000 + i), f"t{i}", "", "1" if i == 2 else "0") for i in range(5)]
    lines = ["\t".join([str(i)] + [_row(*r)[c] for c in yfcc.FULL_COLUMNS[1:]]) for i, r in enumerate(rows)]
    data = "\n".join(lines).encode()  # no final newline
    path = tmp_path / "yfcc100m_dataset"
    path.write_bytes(data)
    f = yfcc.inspect(path, COLS)
    newlines = [i for i, c in enumerate(data) if c == ord("\n")]
    for cut in sorted({c + d for c in newlines for d in (-1, 0, 1, 2)} | {0, 1, len(data) - 1, len(data)}):
        frames = [yfcc.read(f, spec, COLS) for spec in [(0, cut), (cut, len(data))]]
        assert pl.concat([df for df, _ in frames])["photoid"].to_list() == ["3000", "3001", "3003", "3004"], cut
        assert sum(stats["dropped:video"] for _, stats in frames) == 1


def test_chunks_are_sized_from_the_first_bytes_only(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    data = small_header_tsv(400)
    a.write_bytes(data)
    b.write_bytes(data[:300] + b"x" * (len(data) - 300))  # the same size, header and sample; another tail
    saved, yfcc.SAMPLE = yfcc.SAMPLE, 200
    try:
        ranges = yfcc.chunks(yfcc.inspect(a, COLS), 50)
        assert yfcc.chunks(yfcc.inspect(b, COLS), 50) == ranges
    finally:
        yfcc.SAMPLE = saved
    assert 6 <= len(ranges) <= 10  # about 400 / 50 lines each (the sample's lines are shorter)
    assert photoids(a, yfcc.chunks(yfcc.inspect(a, COLS), 50)) == [str(i) for i in range(400)]


def test_header_only_file_is_one_empty_chunk(tmp_path):
    path = tmp_path / "h.tsv"
    path.write_bytes(small_header_tsv(0))
    specs = yfcc.chunks(yfcc.inspect(path, COLS), 10)
    assert specs == [(len(path.read_bytes()), len(path.read_bytes()))]
    assert photoids(path, specs) == []


def yfcc_inputs(folder: Path) -> Path:
    """A plain CRLF header TSV with blank lines and a gzip one, both full of duplicates that differ only
    in datetaken: the kept row shows which input order the reduce saw."""
    rows = [(str(i % 7), f"2010-01-01 00:00:{i:02d}", str(1200000000 + i % 7), f"t{i % 7}", "", "0") for i in range(30)]
    lines = ["\t".join(_row(*r)[h] for h in HEADER) for r in rows]
    folder.mkdir()
    (folder / "y.tsv").write_bytes(("\t".join(HEADER) + "\r\n" + "\r\n\r\n".join(lines)).encode())
    (folder / "z.tsv.gz").write_bytes(gzip.compress(("\t".join(HEADER) + "\n" + "\n".join(lines[::-1]) + "\n").encode()))
    return folder


def curated(inputs: Path, out: Path, chunk_rows: int, executor=None) -> dict:
    cfg = CurateConfig(inputs=(str(inputs),), out=out, benchmark="tic-yfcc", chunk_rows=chunk_rows, partitions=2, progress=False)
    doc = curate(cfg, executor or InlineExecutor())
    assert doc["ledger"]["rows_in"] == 60 and doc["rows"] == 7
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.glob("manifest/*/*.parquet"))} | {"doc": (out / "manifest.json").read_bytes()}


def test_curated_bytes_do_not_depend_on_where_chunks_are_cut(tmp_path):
    inputs = yfcc_inputs(tmp_path / "in")
    outs = [curated(inputs, tmp_path / f"out{chunk_rows}", chunk_rows) for chunk_rows in (1, 4, 1000)]
    assert [{k: v for k, v in o.items() if k != "doc"} for o in outs[1:]] == [{k: v for k, v in outs[0].items() if k != "doc"}] * 2
    kept = pl.read_parquet(tmp_path / "out1" / "manifest" / "*" / "*.parquet").sort("photoid")
    assert kept["datetaken"].to_list() == [f"2010-01-01 00:00:{i:02d}" for i in range(7)]  # the first sighting in y.tsv


class Stops(InlineExecutor):
    """Runs `n` tasks, then fails as a killed run would."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def run(self, tasks):
        for i, done in enumerate(super().run(tasks)):
            if i == self.n:
                raise RuntimeError("stopped")
            yield done


def test_a_stopped_curation_of_byte_ranges_resumes_to_the_same_bytes(tmp_path):
    inputs = yfcc_inputs(tmp_path / "in")
    want = curated(inputs, tmp_path / "ref", 4)
    with pytest.raises(RuntimeError, match="stopped"):
        curated(inputs, tmp_path / "out", 4, Stops(5))
    assert curated(inputs, tmp_path / "out", 4) == want
