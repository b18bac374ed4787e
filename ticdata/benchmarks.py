"""Benchmark definitions (benchmarks/*.toml): the steps, the years each holds, eval sizes, budget.

A name ("tic-datacomp") picks a shipped definition; a path picks a user's TOML file. With monthly
granularity each step's years are split into one bucket per calendar month ("2019-07"); a folder
made from uid lists (`tic uids import`) has granularity "list": each row names its bucket in a
`bucket` column.

Bucket names become folder names (shards/<bucket>/, eval/<bucket>/, <bucket>.npy), so they follow
one rule, checked here wherever names are read: `check_bucket_name`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import polars as pl

from ticdata.errors import UserError
from ticdata.shapes import NUMBER, Opt, check_shape

GRANULARITIES = ("year", "month")
DEFINITIONS = "ticdata.definitions"  # the package holding the shipped TOML files (folder benchmarks/)
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,99}")
BUCKET_NAME_RULE = "1-100 characters: letters, digits, '.', '_', '=', '+', '-', starting with a letter or digit"


# what a definition (a TOML file, or manifest.json's `benchmark`) must look like; steps are checked one by one below
DEFINITION_SHAPE = {
    "name": Opt(str),
    "description": Opt(str),
    "granularity": Opt(str),
    "steps": Opt(list),
    "eval": Opt({str: NUMBER}),
    "compute": Opt({str: NUMBER}),
}

def check_bucket_name(name: str, where: str | Path | None = None) -> str:
    """`name` when it can name a folder inside another (no '/', no '..', not absolute), else a
    UserError naming `where` it came from."""
    if not isinstance(name, str) or not BUCKET_NAME.fullmatch(name):
        origin = f"{where}: " if where else ""
        raise UserError(f"{origin}bucket name {name!r} cannot name a folder; use {BUCKET_NAME_RULE}")
    return name


@dataclass(frozen=True)
class Step:
    name: str
    years: tuple[int, ...]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    steps: tuple[Step, ...]
    granularity: str = "year"
    eval: dict = field(default_factory=dict)
    compute: dict = field(default_factory=dict)
    source: str = ""

    def with_granularity(self, granularity: str | None) -> "Benchmark":
        if granularity is None or granularity == self.granularity:
            return self
        if granularity not in GRANULARITIES:
            raise UserError(f"--granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)}")
        return Benchmark(self.name, self.description, self.steps, granularity, self.eval, self.compute, self.source)

    def step_of_year(self, year: int) -> Step | None:
        for step in self.steps:
            if year in step.years:
                return step
        return None

    def bucket_of(self, year: int, month: int) -> str | None:
        """The bucket a row of this year/month falls in, or None when it is outside every step."""
        step = self.step_of_year(year)
        if step is None:
            return None
        return step.name if self.granularity == "year" else f"{year:04d}-{month:02d}"

    def bucket_expr(self, year: pl.Expr | None = None, month: pl.Expr | None = None) -> pl.Expr:
        """The bucket name of each row (null outside every step), from its year and month columns
        (or expressions, e.g. `ts.dt.year()`); for a "list" folder, its `bucket` column."""
        if self.granularity == "list":
            return pl.col("bucket")
        year = pl.col("year") if year is None else year
        year_to_step = {y: s.name for s in self.steps for y in s.years}
        if self.granularity == "year":
            return year.replace_strict(year_to_step, default=None, return_dtype=pl.String)
        month = pl.col("month") if month is None else month
        name = pl.format("{}-{}", year.cast(pl.String).str.zfill(4), month.cast(pl.String).str.zfill(2))
        return pl.when(year.is_in(list(year_to_step))).then(name).otherwise(None)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "granularity": self.granularity,
            "steps": [{"name": s.name, "years": list(s.years)} for s in self.steps],
            "eval": self.eval,
            "compute": self.compute,
        }


def shipped_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in resources.files(DEFINITIONS).iterdir() if p.name.endswith(".toml"))


def load_benchmark(name_or_path: str) -> Benchmark:
    """A shipped definition by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        where = path
        try:
            text = path.read_text()
        except OSError as e:
            raise UserError(f"{path}: cannot read the benchmark definition ({e.strerror})")
    else:
        res = resources.files(DEFINITIONS).joinpath(f"{name_or_path}.toml")
        if not res.is_file():
            raise UserError(
                f"--benchmark {name_or_path!r}: no such definition; use one of {', '.join(shipped_names())} or a path to a .toml file"
            )
        where, text = Path(str(res)), res.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: not valid TOML ({e})")
    return _from_dict(data, where)


def _from_dict(data: dict, where: Path) -> Benchmark:
    check_shape(data, DEFINITION_SHAPE, where, "fix the benchmark definition (see benchmarks/*.toml)")
    steps = []
    seen: dict[int, str] = {}
    by_list = data.get("granularity") == "list"  # buckets named by a `bucket` column (uid lists)
    for i, raw in enumerate(data.get("steps", [])):
        try:
            name = str(raw["name"])
            years = tuple(int(y) for y in raw["years"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: [[steps]] entry {i} needs a name and a list of integer years")
        check_bucket_name(name, where)
        if not years and not by_list:
            raise UserError(f"{where}: step {name!r} has no years")
        for y in years:
            if y in seen:
                raise UserError(f"{where}: year {y} is in both step {seen[y]!r} and step {name!r}; a year belongs to one step")
            seen[y] = name
        steps.append(Step(name, years))
    if not steps:
        raise UserError(f"{where}: no [[steps]]; a benchmark needs at least one step")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise UserError(f"{where}: step names must be unique, got {names}")
    bench = Benchmark(
        name=str(data.get("name", where.stem)),
        description=str(data.get("description", "")),
        steps=tuple(steps),
        granularity="year",
        eval=dict(data.get("eval", {})),
        compute=dict(data.get("compute", {})),
        source=str(where),
    )
    if by_list:
        return Benchmark(bench.name, bench.description, bench.steps, "list", bench.eval, bench.compute, bench.source)
    return bench.with_granularity(str(data.get("granularity", "year")))


def benchmark_from_manifest(doc: dict, where: Path) -> Benchmark:
    """The benchmark a manifest.json was curated with (its `benchmark` entry); for a folder made
    by hand without one, the benchmark its `buckets` table describes (years, or months)."""
    if "benchmark" in doc:
        return _from_dict(doc["benchmark"], Path(where))
    buckets = doc.get("buckets") or {}
    for name in buckets:
        check_bucket_name(name, where)
    if any("months" in b for b in buckets.values()):
        years = sorted({int(y) for b in buckets.values() for y in b.get("years", [])})
        steps = tuple(Step(str(y), (y,)) for y in years)
        return Benchmark("manifest", "", steps, "month", source=str(where))
    return _from_dict({"name": "manifest", "steps": [{"name": n, "years": b.get("years", [])} for n, b in buckets.items()]}, Path(where))


def bucket_names(doc: dict, where: Path) -> list[str]:
    """The buckets a manifest.json lists, each name checked; an empty list is a UserError."""
    names = list(doc.get("buckets") or {})
    if not names:
        raise UserError(f"{where}: lists no buckets; curate with a benchmark that has steps")
    for name in names:
        check_bucket_name(name, where)
    return names
