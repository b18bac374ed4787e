"""The manifest: Hive-partitioned Parquet by year plus manifest.json (counts, buckets, ledger).

Layout: <out>/manifest/year=YYYY/part-NNNNN.parquet (year lives in the path, as Hive readers
expect) and <out>/manifest.json. Readers: `scan_manifest` (Polars), or any Hive-aware tool
(DuckDB `read_parquet(..., hive_partitioning=true)`, pyarrow.dataset with partitioning="hive").
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import polars as pl

from ticdata.benchmarks import Benchmark
from ticdata.columns import EVIDENCE_OUTPUT, MANIFEST_CORE, carried_name
from ticdata.errors import UserError
from ticdata.layout import MANIFEST_DIR, CuratedFolder
from ticdata.documents import load_manifest_doc
from ticdata.storage import write_json_atomic, write_parquet_atomic

SCHEMA_VERSION = 1


def manifest_schema(input_schemas: list[tuple[str, list[tuple[str, pl.DataType]]]]) -> dict[str, pl.DataType]:
    """The one schema every manifest file shares: core, then evidence present in any input, then
    carried columns in first-seen order. Conflicting carried types are a user error."""
    evidence = {c for _, cols in input_schemas for c, _ in cols if c in EVIDENCE_OUTPUT}
    schema: dict[str, pl.DataType] = dict(MANIFEST_CORE)
    schema.update({c: t for c, t in EVIDENCE_OUTPUT.items() if c in evidence})
    origin: dict[str, str] = {}
    for path, cols in input_schemas:
        for name, dtype in cols:
            if name in ("uid", "url", "text") or name in EVIDENCE_OUTPUT:
                continue
            out = carried_name(name)
            if out not in schema or schema[out] == pl.Null:
                schema[out], origin[out] = dtype, path
            elif dtype != pl.Null and schema[out] != dtype:
                raise UserError(
                    f"{path}: column '{name}' has type {dtype} but {origin[out]} has {schema[out]}; make the inputs agree or curate them separately"
                )
    return {k: (pl.String if v == pl.Null else v) for k, v in schema.items()}


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Add missing columns as nulls, cast, and order as `schema` (extra columns are kept last)."""
    exprs = [
        (pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype=dtype)).alias(name)
        for name, dtype in schema.items()
    ]
    extra = [c for c in df.columns if c not in schema]
    return df.select(exprs + extra)


_FOOTERS_CHECKED: dict[Path, tuple] = {}


def _damage_remedy(out: Path) -> str:
    return f"restore the manifest from a copy, or curate again (tic curate ... --out {out} --overwrite)"


def checked_manifest_files(out: str | Path) -> list[Path]:
    """The manifest's Parquet files, each footer read once (a truncated or half-copied file is the
    common damage, and is caught here before any task starts, with the file named)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = CuratedFolder(Path(out))
    root = folder.manifest_dir
    if not root.is_dir():
        raise UserError(f"{out}: no {MANIFEST_DIR}/ folder; run `tic curate INPUT... --out {out}` first")
    files = folder.manifest_files()
    if not files:
        raise UserError(f"{root}: the manifest has no Parquet files (the curation kept no rows)")
    signature = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if _FOOTERS_CHECKED.get(root.resolve()) != signature:
        for f in files:
            try:
                pq.read_metadata(f)
            except (OSError, pa.ArrowException) as e:
                raise UserError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0][:120]}); {_damage_remedy(folder.root)}") from None
        _FOOTERS_CHECKED[root.resolve()] = signature
    return files


@contextmanager
def manifest_guard(out: str | Path) -> Iterator[None]:
    """Turn a Parquet decoding error met while a verb reads the manifest (damage inside a data page,
    which a footer check cannot see) into one line naming the damaged file; other errors pass."""
    import pyarrow as pa

    from ticdata.executor import TaskFailed  # what a Ray task's Polars error arrives as

    try:
        yield
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError, TaskFailed) as e:
        bad = _first_damaged(Path(out))
        if bad is None:
            raise
        raise UserError(f"{bad[0]}: damaged Parquet ({bad[1][:120]}); {_damage_remedy(Path(out))}") from e


def _first_damaged(out: Path) -> tuple[Path, str] | None:
    for f in CuratedFolder(out).manifest_files():
        try:
            pl.read_parquet(f)
        except (pl.exceptions.PolarsError, OSError) as e:
            return f, str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def scan_manifest(out: str | Path) -> pl.LazyFrame:
    """The manifest of a curated folder as one LazyFrame, `year` included (Int32)."""
    checked_manifest_files(out)
    root = CuratedFolder(Path(out)).manifest_dir
    lf = pl.scan_parquet(root, hive_partitioning=True)
    return lf.with_columns(pl.col("year").cast(pl.Int32))


def load_manifest_json(out: str | Path) -> dict:
    return load_manifest_doc(Path(out))


def bucket_table(counts: list[tuple[int, int, str, int]], bench: Benchmark) -> tuple[dict, dict]:
    """Per-bucket rows from (year, month, split, n) counts, and what falls outside every step."""
    buckets: dict[str, dict] = {}
    for step in bench.steps:
        if bench.granularity == "year":
            buckets[step.name] = {"rows": 0, "years": list(step.years), "step": step.name, "splits": {}}
    outside: dict = {"rows": 0, "years": {}}
    for year, month, split, n in sorted(counts):
        name = bench.bucket_of(year, month)
        if name is None:
            outside["rows"] += n
            outside["years"][str(year)] = outside["years"].get(str(year), 0) + n
            continue
        if name not in buckets:
            step = bench.step_of_year(year)
            buckets[name] = {"rows": 0, "years": [year], "months": [month], "step": step.name, "splits": {}}
        b = buckets[name]
        b["rows"] += n
        b["splits"][split] = b["splits"].get(split, 0) + n
    return buckets, outside


def count_buckets(out: str | Path, bench: Benchmark) -> tuple[dict, dict]:
    """The bucket table of a curated folder as it is on disk (rows, years, splits per bucket; what
    lies outside every bucket). A folder of uid lists (granularity "list") is counted by its
    `bucket` column, every other by the year (and month) each row's bucket follows from."""
    lf = scan_manifest(out)
    split = pl.col("split") if "split" in lf.collect_schema() else pl.lit("train")
    if bench.granularity != "list":
        counts = lf.group_by("year", pl.col("month").fill_null(1), split.alias("split")).len().collect()
        return bucket_table([(int(y), int(m), str(s), int(n)) for y, m, s, n in counts.iter_rows()], bench)
    counts = lf.group_by("bucket", "year", split.alias("split")).len().collect()
    return list_bucket_table(list(counts.iter_rows()), bench)


def list_bucket_table(counts: list[tuple[str, int, str, int]], bench: Benchmark) -> tuple[dict, dict]:
    """The bucket table of a folder of uid lists from (bucket, year, split, n) counts."""
    buckets = {st.name: {"rows": 0, "years": [], "step": st.name, "splits": {}} for st in bench.steps}
    outside: dict = {"rows": 0, "years": {}}
    for name, year, sp, n in sorted(counts, key=lambda r: (str(r[0]), r[1], str(r[2]))):
        if name not in buckets:
            outside["rows"] += n
            outside["years"][str(year)] = outside["years"].get(str(year), 0) + n
            continue
        b = buckets[name]
        b["rows"] += n
        if year not in b["years"]:
            b["years"].append(int(year))
        b["splits"][str(sp)] = b["splits"].get(str(sp), 0) + n
    return buckets, outside


def _year_ranges(years: list[int]) -> str:
    """[2008, 2009, 2010, 2023] -> "2008-2010,2023"."""
    spans: list[list[int]] = []
    for y in years:
        if spans and y == spans[-1][1] + 1:
            spans[-1][1] = y
        else:
            spans.append([y, y])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def format_bucket_table(doc: dict) -> str:
    """The bucket table and ledger of a manifest.json, as text for the terminal."""
    lines = [f"benchmark {doc['benchmark']['name']} ({doc['benchmark']['granularity']} buckets)"]
    lines.append(f"{'bucket':<12} {'years':<16} {'rows':>12}")
    total = 0
    for name, b in doc["buckets"].items():
        years = b["years"]
        span = f"{years[0]}-{years[-1]}" if len(years) > 1 else "".join(map(str, years))
        lines.append(f"{name:<12} {span:<16} {b['rows']:>12,}")
        total += b["rows"]
    out = doc["outside_buckets"]
    if out["rows"]:
        lines.append(f"{'(outside)':<12} {_year_ranges(sorted(int(y) for y in out['years'])):<16} {out['rows']:>12,}")
    lines.append(f"{'total':<12} {'':<16} {total + out['rows']:>12,}")
    led = doc["ledger"]
    lines.append("")
    lines.append(f"ledger: rows_in {led['rows_in']:,} = kept {led['kept']:,} + duplicates {led['duplicates']:,}"
                 f" + dropped {sum(led['dropped'].values()):,}")
    for reason, n in led["dropped"].items():
        lines.append(f"  dropped {reason:<18} {n:>12,}")
    return "\n".join(lines)


def mark_table(table: pl.DataFrame, columns: dict[str, pl.DataType], on: str = "uid") -> pl.DataFrame:
    """`table` as `update_file` applies it: the key and the `columns` it holds, cast, one row per key."""
    present = {c: t for c, t in columns.items() if c in table.columns}
    return table.select(on, *[pl.col(c).cast(t) for c, t in present.items()]).unique(on, keep="last")


def update_file(path: Path, df: pl.DataFrame, table: pl.DataFrame, columns: dict[str, pl.DataType], on: str = "uid") -> tuple[pl.DataFrame, int]:
    """`df` (the part file at `path`) with `table`'s columns (from `mark_table`) set on its matching
    rows, rewritten atomically when anything changed (a column added or a row matched); the frame
    and the rows matched."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in columns.items() if c not in df.columns]
    if missing:
        df = df.with_columns(missing)
    df = df.with_columns([pl.col(c).cast(t) for c, t in columns.items()])
    hits = df.join(table.select(on), on=on, how="semi").height
    if hits:
        df = df.update(table, on=on, how="left", include_nulls=True)
    elif not missing:
        return df, 0
    write_parquet_atomic(path, df, compression="zstd", compression_level=1, statistics=True)
    return df, hits


def update_manifest(out: str | Path, table: pl.DataFrame, columns: dict[str, pl.DataType], on: str = "uid") -> int:
    """Set the `columns` that `table` holds on the manifest rows whose `on` key is in `table` (other
    rows and other columns keep their values; columns the manifest lacks are added as nulls). Rewrites each part file atomically, in place,
    so a killed update is finished by running it again. Returns the rows updated."""
    folder = CuratedFolder(Path(out))
    table = mark_table(table, columns, on)
    updated = 0
    for part in checked_manifest_files(folder.root):
        updated += update_file(part, pl.read_parquet(part), table, columns, on)[1]
    doc_path = folder.manifest_json
    if doc_path.exists():
        doc = load_manifest_doc(folder.root)
        doc["columns"] = doc.get("columns", {}) | {c: str(t) for c, t in columns.items()}
        write_json_atomic(doc_path, doc)
    return updated
