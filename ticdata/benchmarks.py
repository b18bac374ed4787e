"""Benchmark definitions (manifests/*.toml): the steps, the years each holds, eval sizes, budget.

A name ("tic-datacomp") picks a shipped definition; a path picks a user's TOML file. With monthly
granularity each step's years are split into one bucket per calendar month ("2019-07").
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ticdata.errors import UserError

GRANULARITIES = ("year", "month")


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
    return sorted(p.name[: -len(".toml")] for p in resources.files("ticdata.manifests").iterdir() if p.name.endswith(".toml"))


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
        res = resources.files("ticdata.manifests").joinpath(f"{name_or_path}.toml")
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
    steps = []
    seen: dict[int, str] = {}
    for i, raw in enumerate(data.get("steps", [])):
        try:
            name = str(raw["name"])
            years = tuple(int(y) for y in raw["years"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: [[steps]] entry {i} needs a name and a list of integer years")
        if not years:
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
    return bench.with_granularity(str(data.get("granularity", "year")))


def benchmark_from_manifest(doc: dict, where: Path) -> Benchmark:
    """The benchmark a manifest.json was curated with (its `benchmark` entry)."""
    return _from_dict(doc["benchmark"], Path(where))
