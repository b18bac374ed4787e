"""An independent computation of `tic curate` in one DuckDB query, for the tests to compare against.

Written from the rules in DESIGN.md, sharing no code with ticdata (only the crawl index file).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

COLLINFO = Path(__file__).resolve().parents[1] / "ticdata" / "data" / "collinfo.json"
SNAP_RE = r"(CC-MAIN-\d{4}(?:-\d{2,4})?)(?:\D|$)"


def reference_curation(files: list[Path], has_crawl_time: bool = True) -> tuple[pl.DataFrame, dict[str, int]]:
    """(expected manifest rows sorted by uid, dropped count per reason) for Parquet pool files
    with columns uid, url, text, source[, crawl_time as 'YYYY-MM-DDTHH:MM:SSZ' strings]."""
    import warnings

    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    crawls = json.loads(COLLINFO.read_text())
    con.execute("CREATE TABLE crawls (id VARCHAR, start TIMESTAMPTZ)")
    con.executemany("INSERT INTO crawls VALUES (?, ?::TIMESTAMP AT TIME ZONE 'UTC')", [(c["id"], c["from"]) for c in crawls])
    paths = sorted(str(Path(f).resolve()) for f in files)
    con.execute("CREATE TABLE file_order AS SELECT unnest(?::VARCHAR[]) AS filename, generate_subscripts(?::VARCHAR[], 1) AS file_idx", [paths, paths])
    crawl_expr = (
        "try_strptime(crawl_time, '%Y-%m-%dT%H:%M:%SZ')::TIMESTAMP AT TIME ZONE 'UTC'" if has_crawl_time else "NULL::TIMESTAMPTZ"
    )
    query = f"""
    WITH raw AS (
        SELECT r.*, o.file_idx FROM read_parquet(?, filename=true, file_row_number=true, union_by_name=true) r
        JOIN file_order o USING (filename)
    ),
    parsed AS (
        SELECT *,
            CASE WHEN ({crawl_expr}) >= TIMESTAMPTZ '1990-01-01 00:00:00+00'
                  AND ({crawl_expr}) <  TIMESTAMPTZ '2100-01-01 00:00:00+00' THEN ({crawl_expr}) END AS exact,
            nullif(regexp_extract(source, '{SNAP_RE}', 1), '') AS snap
        FROM raw
    ),
    dated AS (
        SELECT p.*, coalesce(p.exact, c.start) AS ts,
            CASE WHEN p.exact IS NOT NULL THEN 'crawl_time' WHEN c.start IS NOT NULL THEN 'snapshot' END AS signal
        FROM parsed p LEFT JOIN crawls c ON c.id = p.snap
    ),
    judged AS (
        SELECT *, CASE
            WHEN url IS NULL OR trim(url) = '' THEN 'missing_url'
            WHEN text IS NULL OR trim(text) = '' THEN 'missing_text'
            WHEN uid IS NULL OR NOT regexp_full_match(uid, '[0-9a-f]{{32}}') THEN 'bad_uid'
            WHEN ts IS NULL AND snap IS NOT NULL THEN 'unknown_snapshot'
            WHEN ts IS NULL THEN 'no_timestamp'
        END AS reason FROM dated
    )
    SELECT * FROM judged
    """
    con.execute(f"CREATE TABLE judged AS {query}", [paths])
    dropped = dict(con.execute("SELECT reason, count(*) FROM judged WHERE reason IS NOT NULL GROUP BY reason").fetchall())
    kept = con.execute(
        """
        SELECT uid, url, text, ts, year(ts)::INTEGER AS year, month(ts)::INTEGER AS month,
               n_seen::INTEGER AS n_seen, snap AS first_snapshot, signal AS ts_signal
        FROM (
            SELECT *, row_number() OVER (PARTITION BY uid ORDER BY ts, file_idx, file_row_number) AS rank,
                      count(*) OVER (PARTITION BY uid) AS n_seen
            FROM judged WHERE reason IS NULL
        ) WHERE rank = 1 ORDER BY uid
        """
    ).to_arrow_table()
    kept = pl.from_arrow(kept)
    kept = kept.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    return kept, {k: int(v) for k, v in dropped.items()}


def curated_rows(out: Path) -> pl.DataFrame:
    """Our manifest, in the reference's columns and order."""
    from ticdata.manifest import scan_manifest

    df = scan_manifest(out).collect()
    return df.select(
        "uid", "url", "text", "ts",
        pl.col("year").cast(pl.Int32), pl.col("month").cast(pl.Int32), pl.col("n_seen").cast(pl.Int32),
        "first_snapshot", "ts_signal",
    ).sort("uid")
