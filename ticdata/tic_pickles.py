"""The official TiC-CLIP eval uid files, read without executing anything they contain.

Apple publishes the held-out sets of TiC-DataComp as pickles:
`tic-datacomp_retrieval_evals_year2uids.pkl` ({year: [uid, ...]}) and
`tic-datacompnet_year2uids.pkl` ({year: {wordnet_id: [uid, ...]}}). A pickle can run any code
when loaded, so these are read by an unpickler that resolves no global at all: only the opcodes
that build dicts, lists, tuples, sets, strings and numbers work, and anything that would import or
call (a class, a function, `os.system`, a numpy array) stops the load with a clear error before it
happens. The loaded object is then checked against the expected shape.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

from ticdata.errors import UserError

_UID = re.compile(r"^[0-9a-f]{32}$")
MAX_BYTES = 4 << 30


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):  # noqa: D401 - the only gate through which a pickle can run code
        raise pickle.UnpicklingError(f"refers to {module}.{name}; only dicts, lists and strings are accepted")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("uses persistent ids; only dicts, lists and strings are accepted")


def safe_load(path: Path):
    """The plain data in a pickle file, or UserError naming the file when it holds anything else."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size:,} bytes is larger than any TiC uid file; not loading it")
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})")
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: refused: the pickle {e}. Only TiC's uid maps (plain dicts, lists and strings) are read")
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, RecursionError) as e:
        raise UserError(f"{path}: not a readable pickle ({type(e).__name__}: {e})")


def _year(key, path: Path) -> int:
    try:
        y = int(key)
    except (TypeError, ValueError):
        raise UserError(f"{path}: key {key!r} is not a year; expected {{year: ...}}")
    if not 1990 <= y <= 2100:
        raise UserError(f"{path}: key {key!r} is not a plausible year")
    return y


def _uids(value, path: Path, where: str) -> list[str]:
    if not isinstance(value, (list, tuple, set)):
        raise UserError(f"{path}: {where} holds a {type(value).__name__}; expected a list of uids")
    out = []
    for u in value:
        if not isinstance(u, str) or not _UID.match(u):
            raise UserError(f"{path}: {where} holds {u!r}, not a uid (32 lower-case hex digits)")
        out.append(u)
    return out


def load_retrieval(path: Path) -> dict[int, list[str]]:
    """{year: [uid, ...]} from tic-datacomp_retrieval_evals_year2uids.pkl (or the same shape)."""
    obj = safe_load(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}; expected {{year: [uid, ...]}}")
    return {_year(k, path): _uids(v, path, f"year {k!r}") for k, v in obj.items()}


def load_datacompnet(path: Path) -> dict[int, dict[str, list[str]]]:
    """{year: {wordnet_id: [uid, ...]}} from tic-datacompnet_year2uids.pkl (or the same shape)."""
    obj = safe_load(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}; expected {{year: {{wordnet_id: [uid, ...]}}}}")
    out: dict[int, dict[str, list[str]]] = {}
    for k, v in obj.items():
        year = _year(k, path)
        if not isinstance(v, dict):
            raise UserError(f"{path}: year {k!r} holds a {type(v).__name__}; expected {{wordnet_id: [uid, ...]}}")
        out[year] = {}
        for wnid, uids in v.items():
            if not isinstance(wnid, str):
                raise UserError(f"{path}: year {k!r} has a class key {wnid!r}; expected a WordNet id such as 'n01440764'")
            out[year][wnid] = _uids(uids, path, f"year {k!r}, class {wnid}")
    return out


def official_sizes(path: Path) -> dict:
    """Per year, how many uids an official eval map lists (and, for DataCompNet, over how many
    classes, with the smallest, median and largest class): the check of tic's default set sizes."""
    obj = safe_load(path)
    nested = isinstance(obj, dict) and any(isinstance(v, dict) for v in obj.values())
    if not nested:
        return {"kind": "retrieval", "years": {y: {"uids": len(u)} for y, u in sorted(load_retrieval(path).items())}}
    years = {}
    for y, per in sorted(load_datacompnet(path).items()):
        sizes = sorted(len(u) for u in per.values()) or [0]
        years[y] = {"uids": sum(sizes), "classes": len(per), "per_class_min": sizes[0],
                    "per_class_median": sizes[len(sizes) // 2], "per_class_max": sizes[-1]}
    return {"kind": "datacompnet", "years": years}


def format_official_sizes(path: Path, doc: dict) -> str:
    if doc["kind"] == "retrieval":
        lines = [f"{path}: retrieval pairs per year", f"{'year':<6} {'uids':>10}"]
        lines += [f"{y:<6} {v['uids']:>10,}" for y, v in doc["years"].items()]
    else:
        lines = [f"{path}: DataCompNet images per year", f"{'year':<6} {'uids':>10} {'classes':>8} {'min':>6} {'median':>7} {'max':>6}"]
        lines += [f"{y:<6} {v['uids']:>10,} {v['classes']:>8,} {v['per_class_min']:>6,} {v['per_class_median']:>7,} "
                  f"{v['per_class_max']:>6,}" for y, v in doc["years"].items()]
    total = sum(v["uids"] for v in doc["years"].values())
    return "\n".join(lines + [f"{'total':<6} {total:>10,}"])
