"""Class vocabularies for the classification eval sets, and captions matched to them.

DataCompNet-style labelling (TiC-CLIP, section 3): a caption names a class when one of the class's
synonyms occurs in it as whole words (case, punctuation and hyphens ignored; a plural of the last
word counts too). A caption that names two classes, or names a synonym shared by two classes
("crane" the bird and the machine), is ambiguous and is not labelled. Where synonyms overlap in
one caption, the longest wins at a position ("tiger shark" is a tiger shark, not a tiger).

Matching runs in Polars with one Aho-Corasick pass over all synonyms: every word is wrapped in
spaces on both sides (" a  tiger  shark ") and so is every synonym, so a match always starts and
ends on word boundaries, and leftmost-first matching over synonyms sorted longest-first gives the
longest synonym at each position.

Vocabularies: `imagenet` (the 1000 ImageNet classes with WordNet ids, open_clip's names and
WordNet's lemmas, shipped in ticdata/data/imagenet_classes.json), `column:NAME` (the labels are
a manifest column's values, as the synthetic world's `concept`), or a file: JSON shaped like the
shipped one, or text with one class per line, `name[, synonym, ...]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import polars as pl

from ticdata.errors import UserError

COLUMN_PREFIX = "column:"
# Prompts for classes that are not ImageNet's (a column or a text file without templates).
DEFAULT_TEMPLATES = ("a photo of a {c}.", "a picture of a {c}.", "an image of the {c}.", "a photo of the small {c}.", "a photo of the large {c}.")
_NON_WORD = r"[^\p{L}\p{N}]+"


@dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]  # class index -> display name (classnames.txt)
    synonyms: tuple[tuple[str, ...], ...]  # class index -> phrases that name it in a caption
    templates: tuple[str, ...]  # zero-shot prompts, "{c}" is the class name
    source: str  # "imagenet", "column:concept" or a file path
    wnids: tuple[str, ...] | None = None  # WordNet ids (imagenet), to import TiC's DataCompNet uid maps
    column: str | None = None  # labels come from this manifest column, not from captions

    def to_json(self) -> dict:
        return {"source": self.source, "classes": len(self.names), "column": self.column,
                "synonyms": sum(len(s) for s in self.synonyms), "templates": len(self.templates)}


def class_text(vocab: Vocabulary, label: int) -> str:
    """A class's text for the caption filter: its name, then its other synonyms (LAIONet compares a
    caption with its synset's lemmas)."""
    return ", ".join(dict.fromkeys((vocab.names[label], *vocab.synonyms[label])))


def _normalise_phrase(text: str) -> str:
    import re

    return " ".join(re.sub(r"[^\w]+", " ", text.lower().replace("_", " ")).split())


def _plural(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        p = last + "es"
    elif len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def imagenet() -> Vocabulary:
    doc = json.loads(resources.files("ticdata.data").joinpath("imagenet_classes.json").read_text())
    cls = doc["classes"]
    return Vocabulary(
        names=tuple(c["name"] for c in cls),
        synonyms=tuple(tuple(c["synonyms"]) for c in cls),
        templates=tuple(doc["templates"]),
        source="imagenet",
        wnids=tuple(c["wnid"] for c in cls),
    )


def from_file(path: Path) -> Vocabulary:
    """A JSON vocabulary ({"classes": [{"name", "synonyms"?, "wnid"?}], "templates"?}) or a text file
    with one class per line: `name[, synonym, ...]` (blank lines and `#` comments skipped)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"{path}: cannot read the class vocabulary ({e.strerror})")
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
            cls = doc["classes"]
            names = [str(c["name"]) for c in cls]
            syn = [tuple(c.get("synonyms") or [c["name"]]) for c in cls]
            wnids = tuple(c["wnid"] for c in cls) if all("wnid" in c for c in cls) else None
            templates = tuple(doc.get("templates") or DEFAULT_TEMPLATES)
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: not a class vocabulary ({e}); expected "
                            '{"classes": [{"name": ..., "synonyms": [...]}, ...]}')
    else:
        names, syn = [], []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",") if p.strip()]
            names.append(parts[0])
            syn.append(tuple(parts))
        wnids, templates = None, DEFAULT_TEMPLATES
    if not names:
        raise UserError(f"{path}: the class vocabulary lists no classes")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise UserError(f"{path}: class names must be unique; repeated: {', '.join(dup)}")
    return Vocabulary(tuple(names), tuple(syn), templates, str(path), wnids)


def from_column(column: str, values: list[str]) -> Vocabulary:
    names = tuple(sorted(set(values)))
    return Vocabulary(names, tuple((n,) for n in names), DEFAULT_TEMPLATES, COLUMN_PREFIX + column, column=column)


def resolve_spec(spec: str, columns: list[str]) -> str:
    """`auto` is `column:concept` when the manifest has a `concept` column (the synthetic world), else `imagenet`."""
    if spec == "auto":
        return COLUMN_PREFIX + "concept" if "concept" in columns else "imagenet"
    if spec.startswith(COLUMN_PREFIX) and spec[len(COLUMN_PREFIX):] not in columns:
        raise UserError(f"--classes {spec}: the manifest has no column {spec[len(COLUMN_PREFIX):]!r}; "
                        f"its columns are {', '.join(columns)}")
    return spec


def load_vocabulary(spec: str, column_values: list[str] | None = None) -> Vocabulary:
    """`imagenet`, `column:NAME` (with that column's distinct values) or a vocabulary file."""
    if spec == "imagenet":
        return imagenet()
    if spec.startswith(COLUMN_PREFIX):
        vals = [v for v in (column_values or []) if v is not None and v != ""]
        if not vals:
            raise UserError(f"--classes {spec}: the column holds no values to use as classes")
        return from_column(spec[len(COLUMN_PREFIX):], vals)
    path = Path(spec)
    if not path.exists():
        raise UserError(f"--classes {spec}: not 'imagenet', 'auto', 'column:NAME' or an existing vocabulary file")
    return from_file(path)


def phrase_table(vocab: Vocabulary) -> pl.DataFrame:
    """(pattern, label) with each synonym and its plural in the padded form the matcher uses;
    a pattern naming two classes gets label -1 (ambiguous)."""
    owners: dict[str, set[int]] = {}
    for label, syns in enumerate(vocab.synonyms):
        phrases = {_normalise_phrase(s) for s in syns} - {""}
        phrases |= {_plural(p) for p in phrases}
        for p in phrases:
            owners.setdefault(p, set()).add(label)
    rows = [(" " + "  ".join(p.split()) + " ", next(iter(ls)) if len(ls) == 1 else -1) for p, ls in owners.items()]
    rows.sort(key=lambda r: (-len(r[0]), r[0]))  # longest first: leftmost-first then prefers it
    return pl.DataFrame(rows, schema={"pattern": pl.String, "label": pl.Int32}, orient="row")


def padded_words(text: pl.Expr) -> pl.Expr:
    """" a  tiger  shark " from "A tiger-shark!": lower case, every word wrapped in spaces."""
    words = text.str.to_lowercase().str.replace_all(_NON_WORD, " ").str.replace_all("_", " ", literal=True).str.strip_chars()
    return pl.lit(" ") + words.str.replace_all(" ", "  ", literal=True) + pl.lit(" ")


def match_captions(df: pl.DataFrame, vocab: Vocabulary, text: str = "text") -> pl.DataFrame:
    """`df` with `label` (Int32: the one class its caption names, else null) and `class_match`
    ("one", "none" or "ambiguous")."""
    table = phrase_table(vocab)
    found = (
        df.select(_row=pl.int_range(pl.len(), dtype=pl.UInt32),
                  _p=padded_words(pl.col(text).fill_null("")).str.extract_many(table["pattern"].to_list(), leftmost=True))
        .explode("_p")
        .drop_nulls("_p")
        .join(table, left_on="_p", right_on="pattern", how="inner")
        .group_by("_row")
        .agg(_n=pl.col("label").n_unique(), _amb=(pl.col("label") < 0).any(), _label=pl.col("label").first())
    )
    out = df.with_row_index("_row").join(found, on="_row", how="left")
    one = (pl.col("_n") == 1) & ~pl.col("_amb")
    return out.with_columns(
        label=pl.when(one).then(pl.col("_label")).otherwise(None).cast(pl.Int32),
        class_match=pl.when(pl.col("_n").is_null()).then(pl.lit("none")).when(one).then(pl.lit("one")).otherwise(pl.lit("ambiguous")),
    ).drop("_row", "_n", "_amb", "_label")
