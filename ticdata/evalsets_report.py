"""The evalsets.json document of `tic evalsets` and its terminal table, from the stages' counts:
per bucket the held-out sizes, the excluded training rows by reason and the training ledger
train_in = train_out + held_out + excluded (no manifest row is read to make it)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import polars as pl

from ticdata.evalselect import CLASSIFICATION, NOT_DOWNLOADED, RETRIEVAL
from ticdata.evalsets_tasks import NO_IMAGE, REASONS
from ticdata.layout import EVAL_DIR, TRAIN_DIR


def _bucket_doc(config, b: str, images: int, sel: pl.DataFrame, excluded: dict) -> dict:
    """One bucket's sizes and ledger."""
    mine = sel.filter(pl.col("bucket") == b)
    h = dict(mine.group_by("split").len().iter_rows())
    held_out = h.get(RETRIEVAL, 0) + h.get(CLASSIFICATION, 0)
    train_out = images - held_out - sum(excluded.values())
    out = {
        "images": images,
        RETRIEVAL: h.get(RETRIEVAL, 0),
        CLASSIFICATION: h.get(CLASSIFICATION, 0),
        "classes": mine.filter(pl.col("split") == CLASSIFICATION)["label"].n_unique(),
        "excluded": {r: excluded.get(r, 0) for r in REASONS},
        "train": train_out,
        "ledger": {"train_in": images, "train_out": train_out, "held_out": held_out, "excluded": sum(excluded.values())},
        "paths": {k: f"{EVAL_DIR}/{b}/{k}" for k in (RETRIEVAL, CLASSIFICATION)},
    }
    if config.train_shards:
        out["train_shards"] = f"{TRAIN_DIR}/shards/{b}"
    return out


def summary(config, plan: dict, vocab, buckets: list[str], images: dict, sel: pl.DataFrame, sel_info: dict, flagged: dict,
            splits: dict, hstats: dict, wstats: dict, train_doc: dict | None, seconds: float) -> dict:
    """evalsets.json: `images` per bucket (the join's counts), `flagged` {bucket: {reason: n}}
    (NO_IMAGE for rows without an image), `splits` the manifest's rows per split after marking."""
    return {
        "plan": plan,
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                       if k not in ("dir", "progress", "overwrite")} | {"retrieval": plan["retrieval_per_bucket"],
                                                                         "per_class": plan["classification_per_class"]},
        "vocabulary": vocab.to_json(),
        "buckets": {b: _bucket_doc(config, b, images.get(b, 0), sel, flagged.get(b, {})) for b in buckets},
        "excluded_not_downloaded": dict(flagged.get(NO_IMAGE, {})),
        "manifest_splits": dict(sorted(splits.items())),
        "candidates": sel_info["candidates"],
        "imports": sel_info["imports"],
        "hash": {"tars": len(hstats), "samples": sum(s["samples"] for s in hstats.values()),
                 "undecodable": sum(s["undecodable"] for s in hstats.values()),
                 "no_image": sum(s["no_image"] for s in hstats.values()), "no_uid": sum(s["no_uid"] for s in hstats.values())},
        "written": {k: v for k, v in wstats.items()},
        "train_reshard": None if train_doc is None else train_doc.get("ledger"),
        "seconds": round(seconds, 1),
    }


def starved(doc: dict) -> list[str]:
    """One warning per bucket whose images all went to its eval sets or were excluded: `tic train`
    would refuse every step drawing from it (a small or link-rotted bucket meets fixed set sizes)."""
    out = []
    for b, v in doc["buckets"].items():
        if v["images"] and v["train"] <= 0:
            out.append(f"bucket {b}: no training sample left of its {v['images']:,} images ({v[RETRIEVAL]:,} retrieval, "
                       f"{v[CLASSIFICATION]:,} classification, {sum(v['excluded'].values()):,} excluded), so tic train refuses "
                       "the steps drawing from it; rerun with --overwrite and a smaller --retrieval or --per-class")
    return out


def format_evalsets_table(doc: dict) -> str:
    """Per bucket: held-out sizes, excluded training rows by reason, training rows left."""
    lines = [f"{'bucket':<12} {'images':>8} {'retrieval':>10} {'classif.':>9} {'classes':>8} "
             f"{'same_img':>9} {'same_pair':>10} {'near_dup':>9} {'train':>8}"]
    tot = {k: 0 for k in ("images", RETRIEVAL, CLASSIFICATION, "train", *REASONS)}
    for b, v in doc["buckets"].items():
        ex = v["excluded"]
        lines.append(f"{b:<12} {v['images']:>8,} {v[RETRIEVAL]:>10,} {v[CLASSIFICATION]:>9,} {v['classes']:>8,} "
                     f"{ex['same_image']:>9,} {ex['same_pair']:>10,} {ex['near_duplicate']:>9,} {v['train']:>8,}")
        for k in ("images", RETRIEVAL, CLASSIFICATION, "train"):
            tot[k] += v[k]
        for r in REASONS:
            tot[r] += ex[r]
    lines.append(f"{'total':<12} {tot['images']:>8,} {tot[RETRIEVAL]:>10,} {tot[CLASSIFICATION]:>9,} {'':>8} "
                 f"{tot['same_image']:>9,} {tot['same_pair']:>10,} {tot['near_duplicate']:>9,} {tot['train']:>8,}")
    voc = doc["vocabulary"]
    lines.append(f"classes: {voc['source']} ({voc['classes']} classes); pHash distance <= {doc['parameters']['distance']}; "
                 f"seed {doc['parameters']['seed']}")
    cf = doc.get("plan", {}).get("caption_filter")
    if cf:
        dropped = sum(c.get("caption_not_similar", 0) for c in doc.get("candidates", {}).values())
        lines.append(f"caption filter: {cf['model']} text similarity >= {cf['threshold']}: {dropped:,} class-naming captions passed over")
    if doc.get("manifest_splits", {}).get(NOT_DOWNLOADED):
        lines.append(f"rows without an image (split {NOT_DOWNLOADED}, never trained on): {doc['manifest_splits'][NOT_DOWNLOADED]:,}")
    if doc.get("excluded_not_downloaded"):
        lines.append(f"excluded rows without an image: {doc['excluded_not_downloaded']}")
    lines += [f"warning: {w}" for w in starved(doc)]
    return "\n".join(lines)
