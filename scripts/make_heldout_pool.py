#!/usr/bin/env python
"""Write a pool that tic's own generator did not make, for `scripts/bench_curate.py --pool DIR`.

A benchmark tuned to one generated pool proves little, so this pool comes from independent code
(one DuckDB query per file) with other distributions than `tic synth pool`: DataComp's columns plus
`source` (CommonCrawl WARC paths, ~40k distinct) and `crawl_time` (a WARC-Date string on about half
the rows), uids drawn with replacement from a smaller set (so re-sightings fall anywhere, across
files), captions and URLs of widely varying length, and bad rows at fixed rates: blank url or text,
a malformed uid, a crawl id no index knows, no time evidence at all.

    .venv/bin/python scripts/make_heldout_pool.py --rows 16000000 --files 60 --out /tmp/heldout
    .venv/bin/python scripts/bench_curate.py --pool /tmp/heldout --executor ray --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CRAWLS = ["CC-MAIN-2014-15", "CC-MAIN-2015-48", "CC-MAIN-2016-50", "CC-MAIN-2017-39", "CC-MAIN-2018-30",
          "CC-MAIN-2019-35", "CC-MAIN-2020-45", "CC-MAIN-2021-25", "CC-MAIN-2022-33"]

FILE_QUERY = """
COPY (
  WITH r AS (
    SELECT i, (hash(i * 7919 + {seed}) >> 1)::BIGINT AS h FROM range({start}, {stop}) t(i)
  )
  SELECT
    CASE WHEN h % 1000 = 3 THEN 'not-a-uid-' || (h % 997)::VARCHAR
         ELSE md5(((h >> 7) % {uids})::VARCHAR) END AS uid,
    CASE WHEN h % 1000 = 1 THEN '   '
         ELSE 'https://' || ['img', 'cdn', 'static', 'media', 'i'][1 + (h >> 3) % 5] || '.site' || ((h >> 11) % 50000)::VARCHAR
              || '.example/' || repeat('p', 1 + ((h >> 17) % 60)::INT) || '/' || i::VARCHAR || '.jpg' END AS url,
    CASE WHEN h % 1000 = 2 THEN ''
         ELSE repeat(['a photo of ', 'picture: ', 'stock image ', ''][1 + (h >> 5) % 4], 1) || 'item ' || ((h >> 21) % 100000)::VARCHAR
              || repeat(' word', ((h >> 29) % 40)::INT) END AS text,
    CASE WHEN h % 1000 = 4 THEN 'crawl-data/CC-MAIN-2099-99/segments/x/warc/y.warc.gz'
         WHEN h % 1000 = 5 THEN 'local-upload/' || ((h >> 9) % 100)::VARCHAR
         ELSE 'crawl-data/' || {crawls}[1 + ((h >> 13) % {n_crawls})::INT] || '/segments/1' || ((h >> 23) % 4000)::VARCHAR
              || '.0/warc/CC-MAIN-' || ((h >> 31) % 10)::VARCHAR || '.warc.gz' END AS source,
    CASE WHEN h % 1000 = 5 OR (h >> 37) % 2 = 0 THEN NULL
         ELSE strftime(TIMESTAMP '2014-01-01' + INTERVAL (((h >> 41) % 283996800)::BIGINT) SECOND, '%Y-%m-%dT%H:%M:%SZ') END AS crawl_time,
    (64 + (h >> 43) % 4000)::INTEGER AS original_width,
    (64 + (h >> 47) % 3000)::INTEGER AS original_height,
    ((h >> 51) % 1000 / 1000.0)::FLOAT AS clip_b32_similarity_score
  FROM r
) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group})
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16_000_000)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--distinct-share", type=float, default=0.62, help="distinct uids / rows (default 0.62: about 1.6 sightings each)")
    ap.add_argument("--row-group", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import duckdb

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    started = time.monotonic()
    uids = max(1, int(args.rows * args.distinct_share))
    per = -(-args.rows // args.files)
    for f in range(args.files):
        start, stop = f * per, min(args.rows, (f + 1) * per)
        if start >= stop:
            break
        path = out / f"part-{f:05d}.parquet"
        con.execute(FILE_QUERY.format(seed=args.seed, start=start, stop=stop, uids=uids, crawls=json.dumps(CRAWLS).replace('"', "'"),
                                      n_crawls=len(CRAWLS), path=path, row_group=args.row_group))
    size = sum(p.stat().st_size for p in out.glob("*.parquet"))
    print(f"wrote {args.rows:,} rows ({uids:,} possible uids) in {args.files} files, {size / 1e6:,.0f} MB, to {out}"
          f" in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
