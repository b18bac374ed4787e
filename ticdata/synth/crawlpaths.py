"""CommonCrawl-style WAT paths and crawl timestamps, shared by both synthetic pools.

The synthetic pool and the synthetic world both give every row a `source` that reads like a real
WAT file of a crawl; the shape of that path is written once, here. Callers draw the random parts
(their own way: a seeded generator or a counter-based hash) and pass them in.
"""

from __future__ import annotations

from datetime import datetime, timezone


def ts14(epoch_s: int) -> str:
    """A crawl timestamp as CommonCrawl writes it in file names: YYYYMMDDhhmmss, UTC."""
    return datetime.fromtimestamp(int(epoch_s), timezone.utc).strftime("%Y%m%d%H%M%S")


def wat_path(crawl_id: str | None, t1_s: int, t2_s: int, segment_ms: int, segment_part: int, file_no: int) -> str:
    """The WAT path of a file written from t1_s to t2_s (epoch seconds) in crawl `crawl_id`:

        crawl-data/CC-MAIN-2019-04/segments/<t1 ms>.<part>/wat/CC-MAIN-<t1>-<t2>-<file_no>.warc.wat.gz

    `segment_ms` (0..999) is added to t1 in milliseconds to name the segment; without a crawl id
    the path has no crawl folder (`crawl-data/segments/...`), as some mirrors write it.
    """
    head = f"crawl-data/{crawl_id}/segments" if crawl_id else "crawl-data/segments"
    segment = f"{t1_s * 1000 + segment_ms}.{segment_part}"
    return f"{head}/{segment}/wat/CC-MAIN-{ts14(t1_s)}-{ts14(t2_s)}-{file_no:05d}.warc.wat.gz"
