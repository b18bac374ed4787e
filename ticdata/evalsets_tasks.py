"""The task kinds of `tic evalsets`, as pure functions of their spec (the job runs them).

hash_tar: sha256 and a 64-bit pHash of every sample's image in one tar. flag_unit: the training
rows of one unit (a manifest file with its images, `evalsets_join`) that match an eval image (same
bytes, or within a pHash distance) or an eval pair (same url and text); flag_training does the
same for one hash file or one manifest file. write_eval_set: one eval set in CLIP_benchmark's
webdataset layout plus samples.parquet, the list tic's evaluator reads.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ticdata.evalselect import CLASSIFICATION
from ticdata.evalsets_join import UnitSpec, load_images
from ticdata.phash import near_pairs, phash_bytes
from ticdata.storage import atomic_dir, atomic_file, write_parquet_atomic
from ticdata.tars import IMAGE_EXTS, TarWriter
from ticdata.wds import iter_samples, sample_uid

HASH_SCHEMA = {"uid": pl.String, "bucket": pl.String, "tar": pl.String, "sha256": pl.String, "phash": pl.UInt64}
FLAG_SCHEMA = {"uid": pl.String, "reason": pl.String, "excluded_by": pl.String, "excluded_distance": pl.Int32}
REASONS = ("same_image", "same_pair", "near_duplicate")  # precedence when several apply
NO_IMAGE = "(not downloaded)"  # the bucket of a flagged row that has no image


@dataclass(frozen=True)
class HashSpec:
    tar: str  # absolute path
    rel: str  # <bucket>/<name>.tar, relative to DIR/shards
    bucket: str
    out: str  # parquet


def hash_tar(spec: HashSpec) -> dict:
    """sha256 and pHash of every sample's image in one tar."""
    t0 = time.perf_counter()
    skipped = [0]
    rows: dict[str, list] = {k: [] for k in HASH_SCHEMA}
    stats = {"samples": 0, "no_image": 0, "undecodable": 0, "no_uid": 0}
    for key, members in iter_samples(spec.tar, skipped):
        stats["samples"] += 1
        uid, _ = sample_uid(members)
        if uid is None:
            stats["no_uid"] += 1
            continue
        img = next((d for e, d in members if e.lower() in IMAGE_EXTS), None)
        if img is None:
            stats["no_image"] += 1
            continue
        try:
            ph = phash_bytes(img)
        except Exception:  # a broken image is not an eval candidate and cannot be compared
            stats["undecodable"] += 1
            ph = None
        for k, v in zip(HASH_SCHEMA, (uid, spec.bucket, spec.rel, hashlib.sha256(img).hexdigest(), ph)):
            rows[k].append(v)
    df = pl.DataFrame(rows, schema=HASH_SCHEMA)
    write_parquet_atomic(Path(spec.out), df, compression="zstd", compression_level=1)
    stats["hashed"] = df.height
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    return stats


@dataclass(frozen=True)
class FlagSpec:
    kind: str  # "hashes" (sha256 + pHash against eval images) or "pairs" (url, text against eval pairs)
    source: str  # a hash parquet or a manifest parquet
    eval_table: str
    out: str
    distance: int


def hash_flags(df: pl.DataFrame, ev: pl.DataFrame, distance: int) -> pl.DataFrame:
    """Training rows (uid, sha256, phash) whose image is an eval image's bytes (same_image) or
    within `distance` pHash bits of one (near_duplicate, the nearest)."""
    same = df.join(ev.select("sha256", excluded_by=pl.col("uid")), on="sha256", how="inner").unique("uid", keep="first")
    parts = [same.select("uid", reason=pl.lit("same_image"), excluded_by=pl.col("excluded_by"), excluded_distance=pl.lit(None, pl.Int32))]
    rest = df.filter(pl.col("phash").is_not_null() & ~pl.col("uid").is_in(same["uid"].implode()))
    near = near_pairs(rest["phash"].to_numpy(), ev["phash"].to_numpy(), distance)  # eval images all have one
    if near.height:
        best = near.sort("distance").unique("q", keep="first")
        parts.append(pl.DataFrame({
            "uid": rest["uid"].to_numpy()[best["q"].to_numpy()].astype(str),
            "reason": "near_duplicate",
            "excluded_by": ev["uid"].to_numpy()[best["r"].to_numpy()].astype(str),
            "excluded_distance": best["distance"].cast(pl.Int32),
        }))
    return pl.concat([p.cast(FLAG_SCHEMA) for p in parts])


def pair_flags(df: pl.DataFrame, ev: pl.DataFrame) -> pl.DataFrame:
    """Training rows (uid, url, text) whose (url, text) is an eval pair's (same_pair)."""
    hit = df.join(ev.select("url", "text", excluded_by=pl.col("uid")), on=["url", "text"], how="inner").unique("uid", keep="first")
    return hit.select("uid", reason=pl.lit("same_pair"), excluded_by=pl.col("excluded_by"),
                      excluded_distance=pl.lit(None, pl.Int32)).cast(FLAG_SCHEMA)


def flag_training(spec: FlagSpec) -> dict:
    """The training rows of one file that match an eval image or pair: (uid, reason, excluded_by =
    the eval uid, excluded_distance = the pHash distance in bits for near_duplicate, else null)."""
    ev = pl.read_parquet(spec.eval_table)
    eval_uids = ev["uid"].implode()
    if spec.kind == "hashes":
        df = pl.read_parquet(spec.source, columns=["uid", "sha256", "phash"]).filter(~pl.col("uid").is_in(eval_uids))
        flags = hash_flags(df, ev, spec.distance)
    else:
        df = pl.read_parquet(spec.source, columns=["uid", "url", "text"]).filter(~pl.col("uid").is_in(eval_uids))
        flags = pair_flags(df, ev)
    write_parquet_atomic(Path(spec.out), flags)
    return {"rows": df.height, "flagged": flags.height}


def first_reason(flags: pl.DataFrame) -> pl.DataFrame:
    """One flag per uid: the first reason in REASONS order."""
    order = {r: i for i, r in enumerate(REASONS)}
    return (flags.with_columns(_o=pl.col("reason").replace_strict(order, return_dtype=pl.Int8))
            .sort("_o", "uid").unique("uid", keep="first", maintain_order=True).drop("_o"))


def flag_unit(spec: UnitSpec, eval_table: str, out: str, distance: int) -> dict:
    """The training rows of one unit (its images; its manifest rows) that match an eval image or
    pair, one reason each, and their count per bucket and reason (rows without an image: NO_IMAGE)."""
    ev = pl.read_parquet(eval_table)
    eval_uids = ev["uid"].implode()
    images = load_images(spec)
    parts = [hash_flags(images.filter(~pl.col("uid").is_in(eval_uids)), ev, distance)]
    if spec.manifest is not None:
        man = pl.read_parquet(spec.manifest, columns=["uid", "url", "text"]).filter(~pl.col("uid").is_in(eval_uids))
        parts.append(pair_flags(man, ev))
    flags = first_reason(pl.concat(parts))
    write_parquet_atomic(Path(out), flags)
    where = flags.join(images.select("uid", "bucket"), on="uid", how="left").with_columns(pl.col("bucket").fill_null(NO_IMAGE))
    counts: dict = {}
    for b, r, n in where.group_by("bucket", "reason").len().iter_rows():
        counts.setdefault(b, {})[r] = n
    return {"flagged": counts}


@dataclass(frozen=True)
class WriteSetSpec:
    bucket: str
    kind: str
    members: str  # parquet: uid, label, tar (relative to shards root)
    shards_root: str
    out: str  # DIR/eval/<bucket>/<kind>
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    samples_per_shard: int


def write_eval_set(spec: WriteSetSpec) -> dict:
    """One eval set in CLIP_benchmark's wds layout plus samples.parquet (in tar order)."""
    want = pl.read_parquet(spec.members)
    labels = dict(zip(want["uid"].to_list(), want["label"].to_list()))
    tars = sorted(set(want["tar"].to_list()))
    listed: dict[str, list] = {"uid": [], "text": [], "label": [], "class": [], "shard": [], "key": []}
    out = Path(spec.out)
    with atomic_dir(out) as tmp:
        (tmp / "test").mkdir()
        shard, in_shard, writer, fh_ctx = 0, 0, None, None

        def close():
            nonlocal writer, fh_ctx
            if writer is not None:
                writer.close()
                fh_ctx.__exit__(None, None, None)
                writer, fh_ctx = None, None

        for rel in tars:
            for key, members in iter_samples(str(Path(spec.shards_root) / rel), [0]):
                uid, _ = sample_uid(members)
                if uid not in labels:
                    continue
                img_ext, img = next((e, d) for e, d in members if e.lower() in IMAGE_EXTS)
                text = next((d.decode("utf-8", "replace") for e, d in members if e == "txt"), "")
                text = " ".join(text.split())  # one caption per line for CLIP_benchmark: no newlines inside
                label = labels[uid]
                if writer is None:
                    fh_ctx = atomic_file(tmp / "test" / f"{shard}.tar")
                    writer = TarWriter(fh_ctx.__enter__())
                writer.add(f"{uid}.{img_ext.lower()}", img)
                writer.add(f"{uid}.txt", text.encode())
                meta = {"uid": uid, "bucket": spec.bucket, "set": spec.kind}
                if spec.kind == CLASSIFICATION:
                    writer.add(f"{uid}.cls", str(label).encode())
                    meta |= {"label": label, "class": spec.classnames[label]}
                writer.add(f"{uid}.json", json.dumps(meta, sort_keys=True).encode())
                for k, v in zip(listed, (uid, text, label, spec.classnames[label] if label is not None else None,
                                         f"test/{shard}.tar", uid)):
                    listed[k].append(v)
                in_shard += 1
                if in_shard == spec.samples_per_shard:
                    close()
                    shard, in_shard = shard + 1, 0
        close()
        n = len(listed["uid"])
        nshards = shard + (1 if in_shard else 0)
        if n == 0:
            nshards = 0
        (tmp / "test" / "nshards.txt").write_text(f"{nshards}\n")
        (tmp / "dataset_type.txt").write_text(f"{spec.kind}\n")
        if spec.kind == CLASSIFICATION:
            (tmp / "classnames.txt").write_text("".join(f"{c}\n" for c in spec.classnames))
            (tmp / "zeroshot_classification_templates.txt").write_text("".join(f"{t}\n" for t in spec.templates))
        pl.DataFrame(listed, schema={"uid": pl.String, "text": pl.String, "label": pl.Int32, "class": pl.String,
                                     "shard": pl.String, "key": pl.String}).write_parquet(tmp / "samples.parquet")
    return {"samples": n, "shards": nshards, "expected": want.height}
