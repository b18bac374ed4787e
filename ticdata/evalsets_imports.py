"""The official TiC eval uid maps imported into `tic evalsets` (--tic-retrieval, --tic-datacompnet):
each listed uid goes to the bucket of the year the map files it under, not the one tic's own
dating gives; the selection counts where the two disagree, per bucket pair (a timestamp-quality
figure that `tic audit` shows beside its own)."""

from __future__ import annotations

import polars as pl

from ticdata.classes import Vocabulary
from ticdata.errors import UserError
from ticdata.evalselect import CLASSIFICATION, RETRIEVAL


def _official_bucket(year: int, bench, buckets: list[str]) -> str | None:
    """The bucket an official map's year belongs to: the step holding it (year buckets), or a bucket
    named by the year itself (a folder of imported yearly lists); None when neither exists."""
    if bench.granularity == "year":
        return next((s.name for s in bench.steps if year in s.years), None)
    return str(year) if str(year) in buckets else None


def official_tables(config, vocab: Vocabulary, bench, buckets: list[str]) -> list[tuple[str, pl.DataFrame, dict]]:
    """Each official map given, as (name, its uids: uid, official_bucket, split, label, facts): the
    bucket is that of the year the map files the uid under."""
    from ticdata.tic_pickles import load_datacompnet, load_retrieval

    out = []
    if config.tic_retrieval:
        year2uids = load_retrieval(config.tic_retrieval)
        uids = pl.DataFrame([(u, _official_bucket(y, bench, buckets)) for y, us in year2uids.items() for u in us],
                            schema={"uid": pl.String, "official_bucket": pl.String}, orient="row").unique("uid", keep="first")
        out.append(("tic_retrieval", uids.select("uid", "official_bucket", split=pl.lit(RETRIEVAL), label=pl.lit(None, pl.Int32)),
                    {"file": str(config.tic_retrieval)}))
    if config.tic_datacompnet:
        if vocab.wnids is None:
            raise UserError(f"{config.tic_datacompnet}: DataCompNet labels are WordNet ids; use --classes imagenet "
                            f"(or a vocabulary file with wnid per class), not {vocab.source}")
        index = {w: i for i, w in enumerate(vocab.wnids)}
        data = load_datacompnet(config.tic_datacompnet)
        recs = [(u, index.get(w, -1), _official_bucket(y, bench, buckets)) for y, per in data.items() for w, us in per.items() for u in us]
        unknown = sorted({w for per in data.values() for w in per if w not in index})
        if unknown:
            raise UserError(f"{config.tic_datacompnet}: WordNet ids not in the vocabulary {vocab.source}: {', '.join(unknown[:5])}")
        df = pl.DataFrame(recs, schema={"uid": pl.String, "label": pl.Int32, "official_bucket": pl.String},
                          orient="row").unique("uid", keep="first")
        out.append(("tic_datacompnet", df.select("uid", "official_bucket", split=pl.lit(CLASSIFICATION), label="label"),
                    {"file": str(config.tic_datacompnet)}))
    return out


def official_picks(tables: list[tuple[str, pl.DataFrame, dict]], have: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Picks from the official maps (uid, official_bucket, split, label) among the rows `have`
    (uid: downloaded, decodable images with a manifest row), and how many could not be placed."""
    picks, info = [], {}
    for name, uids, facts in tables:
        found = uids.join(have.select("uid"), on="uid", how="semi")
        picks.append(found)
        info[name] = facts | {"uids": uids.height, "found": found.height, "not_in_pool_or_not_downloaded": uids.height - found.height}
    empty = pl.DataFrame(schema={"uid": pl.String, "official_bucket": pl.String, "split": pl.String, "label": pl.Int32})
    out = pl.concat(picks).unique("uid", keep="first") if picks else empty
    return out, info


def check_imports(config) -> None:
    from ticdata.tic_pickles import load_datacompnet, load_retrieval

    if config.tic_retrieval:
        load_retrieval(config.tic_retrieval)
    if config.tic_datacompnet:
        load_datacompnet(config.tic_datacompnet)
