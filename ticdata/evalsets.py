"""`tic evalsets DIR`: held-out retrieval and classification sets per bucket; decontaminated training.

Stages (each resumable; a killed run redoes only what is missing):

1. hash     one task per downloaded tar: sha256 of the stored image bytes and a 64-bit pHash
            per sample (DIR/.tic/evalsets/hashes/).
2. select   per bucket, in the driver: `ticdata.evalselect` picks the retrieval set (benchmark's
            `retrieval_per_step`) and the classification set (`classification_per_class` per
            class), seeded; or the official TiC uid maps are imported (`ticdata.tic_pickles`).
3. decontam one task per hash file and per manifest file: a training row, in any bucket, is
            excluded when its image equals an eval image (`same_image`, sha256), when its (url,
            text) equals an eval pair (`same_pair`), or when its pHash is within `--phash-distance`
            bits of an eval image's (`near_duplicate`); the first reason in that order is kept.
4. write    one task per eval set: CLIP_benchmark's webdataset layout,
            DIR/eval/<bucket>/<retrieval|classification>/{test/{0..n-1}.tar, test/nshards.txt,
            dataset_type.txt, classnames.txt, zeroshot_classification_templates.txt} (members
            .jpg, .txt, .cls, .json; key = uid) and samples.parquet, the list tic's evaluator reads.
5. manifest `split` becomes retrieval / classification / excluded / not_downloaded (no image in
            the shards: a failed, refused or skipped download), else train: `split == "train"` is
            exactly the trainable rows. With `exclude_reason`, `eval_class`, the matching eval uid in
            `excluded_by` and, for near_duplicate only, the pHash distance in bits in
            `excluded_distance` (Int32; null for same_image and same_pair, which pHash did not decide).
6. train    the training rows resharded into DIR/train/shards/<bucket>/ (`tic reshard`'s
            machinery): the only shards the trainer reads, so held-out rows are never read.

DIR/eval/evalsets.json (also under "evalsets" in manifest.json) holds the parameters, the sizes
per bucket, why candidates were passed over, and the training ledger per bucket:
train_in = train_out + held_out + excluded[reason].
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import polars as pl

from ticdata.benchmarks import benchmark_from_manifest, bucket_names
from ticdata.classes import COLUMN_PREFIX, Vocabulary, load_vocabulary, resolve_spec
from ticdata.errors import UserError
from ticdata.evalselect import (CLASSIFICATION, EXCLUDED, NOT_DOWNLOADED, RETRIEVAL, TRAIN, SelectParams, caption_check,
                                select_bucket)
from ticdata.executor import Task
from ticdata.job import Job
from ticdata.layout import EVAL_DIR, TRAIN_DIR, CuratedFolder
from ticdata.documents import load_evalsets_doc
from ticdata.evalsets_imports import check_imports, official_picks
from ticdata.evalsets_tasks import FlagSpec, HashSpec, WriteSetSpec, flag_training, hash_tar, write_eval_set
from ticdata.manifest import checked_manifest_files, count_buckets, load_manifest_json, scan_manifest, update_manifest
from ticdata.storage import read_json, write_json_atomic, write_parquet_atomic

log = logging.getLogger(__name__)
REASONS = ("same_image", "same_pair", "near_duplicate")  # precedence when several apply
SPLIT_COLUMNS = {"split": pl.String, "exclude_reason": pl.String, "excluded_by": pl.String, "excluded_distance": pl.Int32,
                 "eval_class": pl.String}


@dataclass(frozen=True)
class EvalConfig:
    dir: Path
    classes: str = "auto"
    seed: int = 0
    retrieval: int | None = None  # per bucket; default: the benchmark's eval.retrieval_per_step
    retrieval_share: float | None = None  # instead: this share of each bucket's images (TiC-YFCC/-RedCaps: 0.01)
    per_class: int | None = None  # default: the benchmark's eval.classification_per_class
    distance: int = 4
    min_words: int = 3
    max_words: int = 60
    tic_retrieval: Path | None = None
    tic_datacompnet: Path | None = None
    caption_model: str | None = None  # DataCompNet caption filter: an open_clip text tower (tic_train.caption_scorer)
    caption_pretrained: str | None = None
    caption_threshold: float = 0.82  # LAIONet's cut for CLIP text embeddings
    samples_per_shard: int = 10_000
    train_shards: bool = True
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.distance <= 31:
            raise UserError(f"--phash-distance {self.distance}: choose 0..31 bits (default 4)")
        if self.min_words < 0 or self.max_words < self.min_words:
            raise UserError(f"--min-words {self.min_words} / --max-words {self.max_words}: need 0 <= min <= max")
        if self.retrieval_share is not None and not (0.0 < self.retrieval_share <= 1.0):
            raise UserError(f"--retrieval-share {self.retrieval_share}: choose a share in (0, 1]")
        for name in ("retrieval", "per_class"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be 0 or more")
        if self.samples_per_shard < 1:
            raise UserError(f"--samples-per-shard {self.samples_per_shard}: must be positive")
        if (self.caption_model is None) != (self.caption_pretrained is None):
            raise UserError("--caption-model and --caption-pretrained go together (the filter needs trained weights)")
        if not -1.0 <= self.caption_threshold <= 1.0:
            raise UserError(f"--caption-threshold {self.caption_threshold}: a cosine similarity, choose -1..1 (default 0.82)")
        for p in (self.tic_retrieval, self.tic_datacompnet):
            if p is not None and not Path(p).is_file():
                raise UserError(f"{p}: no such file")


# ----------------------------------------------------------------------------------- driver


def _shard_tars(folder: CuratedFolder, buckets: list[str]) -> list[tuple[str, Path]]:
    return [(b, p) for b in buckets for p in sorted(folder.shards.bucket(b).glob("*.tar"))]


def _plan_doc(config: EvalConfig, vocab_spec: str, retrieval: int, per_class: int, tars: list[tuple[str, Path]],
              share: float | None = None) -> dict:
    def digest(p: Path | None):
        return hashlib.sha256(Path(p).read_bytes()).hexdigest() if p else None

    return {
        "classes": vocab_spec, "seed": config.seed, "retrieval_per_bucket": retrieval, "classification_per_class": per_class,
        "retrieval_share": share,
        "phash_distance": config.distance, "min_words": config.min_words, "max_words": config.max_words,
        "tic_retrieval": digest(config.tic_retrieval), "tic_datacompnet": digest(config.tic_datacompnet),
        "samples_per_shard": config.samples_per_shard, "train_shards": config.train_shards,
        "caption_filter": None if config.caption_model is None else {
            "model": config.caption_model, "pretrained": config.caption_pretrained, "threshold": config.caption_threshold},
        "tars": [[b, p.name, p.stat().st_size] for b, p in tars],
    }


def _load_rows(dir: Path, hashes: pl.DataFrame, label_column: str | None) -> pl.DataFrame:
    cols = ["uid", "text", "url"] + ([label_column] if label_column else [])
    man = scan_manifest(dir).select(cols).collect()
    return hashes.join(man, on="uid", how="inner")


def _select(config: EvalConfig, dir: Path, state: Path, hashes: pl.DataFrame, vocab: Vocabulary,
            buckets: list[str], retrieval: int, per_class: int, bench, share: float | None = None,
            scorer_factory=None) -> tuple[pl.DataFrame, dict]:
    path = state / "selection.parquet"
    info_path = state / "selection.json"
    if path.exists() and info_path.exists():
        return pl.read_parquet(path), read_json(info_path)
    check = None
    if config.caption_model is not None:
        if scorer_factory is None:
            raise UserError("--caption-model: the caption filter needs the trainer's text encoder; run it through `tic evalsets`")
        check = caption_check(scorer_factory(), vocab, config.caption_threshold)
    rows = _load_rows(dir, hashes, vocab.column)
    imported, info = official_picks(config, vocab, rows, bench, buckets)
    params = SelectParams(
        retrieval=0 if config.tic_retrieval else retrieval, per_class=0 if config.tic_datacompnet else per_class,
        seed=config.seed, distance=config.distance, min_words=config.min_words, max_words=config.max_words)
    placed = imported.join(hashes.select("uid", tic_bucket="bucket"), on="uid", how="inner")
    if imported.height:  # the official map's year decides the bucket; where tic dates the row elsewhere, count it
        pairs = placed.filter(pl.col("official_bucket").fill_null("(none)") != pl.col("tic_bucket")).group_by(
            "official_bucket", "tic_bucket").len().sort("official_bucket", "tic_bucket")
        info["bucket_disagreements"] = {f"{o or '(none)'} -> {t}": n for o, t, n in pairs.iter_rows()}
        info["placed_by_official_year"] = placed.filter(pl.col("official_bucket").is_not_null()).height
    picks = [placed.with_columns(bucket=pl.coalesce("official_bucket", "tic_bucket"))]
    per_bucket = {}
    for b in buckets:
        br = rows.filter((pl.col("bucket") == b) & pl.col("phash").is_not_null() & ~pl.col("uid").is_in(imported["uid"].implode()))
        size = params.retrieval if share is None or config.tic_retrieval else round(share * br.height)
        sel, counts = select_bucket(br, replace(params, retrieval=size), vocab, check)
        picks.append(sel.with_columns(bucket=pl.lit(b)))
        per_bucket[b] = counts
        log.info("%s: %d retrieval, %d classification (%d classes) from %d images", b, counts[RETRIEVAL],
                 counts[CLASSIFICATION], counts["classes"], counts["images"])
    sel = pl.concat([p.select("uid", "bucket", "split", "label") for p in picks]).unique("uid", keep="first").sort("bucket", "split", "uid")
    info = {"imports": info, "candidates": per_bucket}
    write_parquet_atomic(path, sel)
    write_json_atomic(info_path, info)
    return sel, info


def _reset_splits(dir: Path) -> None:
    """Rows marked by an earlier `tic evalsets` go back to train (a rerun with other parameters)."""
    lf = scan_manifest(dir)
    if "split" not in lf.collect_schema():
        return
    marked = lf.filter(pl.col("split") != TRAIN).select("uid").collect()
    if marked.height:
        update_manifest(dir, marked.with_columns(split=pl.lit(TRAIN), *[pl.lit(None, t).alias(c) for c, t in SPLIT_COLUMNS.items()
                                                                        if c != "split"]), SPLIT_COLUMNS)


def _recount(dir: Path, doc: dict) -> dict:
    return count_buckets(dir, benchmark_from_manifest(doc, CuratedFolder(dir).manifest_json))[0]


def make_job(config: EvalConfig) -> tuple[Job, dict]:
    """The eval-set job on config.dir (checked before anything is written) and the facts its plan
    rests on: the buckets, tars, vocabulary spec and set sizes."""
    folder = CuratedFolder(Path(config.dir).resolve())
    doc = load_manifest_json(folder.root)
    buckets = bucket_names(doc, folder.manifest_json)
    tars = _shard_tars(folder, buckets)
    if not tars:
        raise UserError(f"{folder.root}/shards: no tars; run `tic download {folder.root}` (or `tic reshard ... --out {folder.root}`) first")
    schema = scan_manifest(folder.root).collect_schema()
    vocab_spec = resolve_spec(config.classes, list(schema))
    if config.caption_model is not None and vocab_spec.startswith(COLUMN_PREFIX):
        raise UserError(f"--caption-model: the classes come from the manifest column {vocab_spec[len(COLUMN_PREFIX):]!r}, "
                        "not from captions, so there is nothing to filter; drop the flag or pass --classes imagenet|FILE")
    bench_eval = doc["benchmark"].get("eval", {}) if "benchmark" in doc else {}
    retrieval = config.retrieval if config.retrieval is not None else int(bench_eval.get("retrieval_per_step", 1000))
    per_class = config.per_class if config.per_class is not None else int(bench_eval.get("classification_per_class", 50))
    for key, n in (("retrieval_per_step", retrieval), ("classification_per_class", per_class)):
        if n < 0:
            raise UserError(f"{folder.manifest_json}: key 'benchmark.eval.{key}' is {n}; set sizes are 0 or more "
                            f"(pass --{'retrieval' if key.startswith('r') else 'per-class'} N, or fix the file)")
    share = config.retrieval_share if config.retrieval_share is not None else (
        None if config.retrieval is not None else bench_eval.get("retrieval_share"))
    plan = _plan_doc(config, vocab_spec, retrieval, per_class, tars, share)
    check_imports(config)  # refuse a bad pickle before anything is changed
    outputs = (folder.eval_dir,) + ((folder.train_dir,) if config.train_shards else ())
    job = Job(folder.root, "evalsets", plan, outputs=outputs, overwrite=config.overwrite, progress=config.progress,
              clear=lambda: _reset_splits(folder.root), describe="eval sets built with other parameters or inputs",
              defer_replace=True)
    facts = {"doc": doc, "buckets": buckets, "tars": tars, "vocab_spec": vocab_spec, "retrieval": retrieval,
             "per_class": per_class, "plan": plan, "share": share}
    return job.check(), facts


def build_evalsets(config: EvalConfig, executor, scorer_factory=None) -> dict:
    """Run every stage; returns the evalsets.json document. `scorer_factory` builds the caption
    filter's text scorer ((texts, class texts) -> cosine similarities) when the selection runs."""
    started = time.monotonic()
    job, facts = make_job(config)
    folder = CuratedFolder(job.out)
    dir = folder.root
    if job.open().done:
        log.info("%s: eval sets already built with these parameters; nothing to do", folder.eval_dir)
        return load_evalsets_doc(folder.evalsets_json)
    doc, buckets, tars, plan = facts["doc"], facts["buckets"], facts["tars"], facts["plan"]
    vocab_spec = facts["vocab_spec"]
    state = job.state

    # 1. hash
    hash_tasks = []
    for b, p in tars:
        out = state / "hashes" / b / f"{p.stem}.parquet"
        hash_tasks.append(Task(f"hash-{b}-{p.stem}", hash_tar, (HashSpec(str(p.resolve()), f"{b}/{p.name}", b, str(out)),), str(p),
                               outputs=(out,)))
    hstats = job.stage(executor, "hash", hash_tasks)
    hashes = pl.concat([pl.read_parquet(t.args[0].out) for t in hash_tasks]).unique("uid", keep="first")
    job.replace_outputs()  # every tar read: only now do the earlier eval sets and splits go (--overwrite)

    # 2. select
    vocab_values = None
    if vocab_spec.startswith(COLUMN_PREFIX):
        col = vocab_spec[len(COLUMN_PREFIX):]
        vocab_values = scan_manifest(dir).select(pl.col(col).cast(pl.String).unique()).collect()[col].to_list()
    vocab = load_vocabulary(vocab_spec, vocab_values)
    sel, sel_info = _select(config, dir, state, hashes, vocab, buckets, facts["retrieval"], facts["per_class"],
                            benchmark_from_manifest(doc, folder.manifest_json), facts["share"], scorer_factory)

    # 3. decontaminate
    ev = sel.join(hashes.select("uid", "sha256", "phash", "tar"), on="uid", how="inner").join(
        scan_manifest(dir).select("uid", "url", "text").collect(), on="uid", how="inner")
    eval_table = state / "eval.parquet"
    if not eval_table.exists():
        write_parquet_atomic(eval_table, ev)
    flag_tasks = []
    for t in hash_tasks:
        src, out = t.args[0].out, state / "flags" / f"{t.key}.parquet"
        flag_tasks.append(Task(f"flag-{t.key}", flag_training, (FlagSpec("hashes", src, str(eval_table), str(out), config.distance),), src,
                               outputs=(out,)))
    for i, part in enumerate(checked_manifest_files(folder.root)):
        out = state / "flags" / f"pairs-{i:06d}.parquet"
        flag_tasks.append(Task(f"flag-pairs-{i:06d}", flag_training, (FlagSpec("pairs", str(part), str(eval_table), str(out), config.distance),),
                               str(part), outputs=(out,)))
    job.stage(executor, "decontaminate", flag_tasks)
    order = {r: i for i, r in enumerate(REASONS)}
    flags = pl.concat([pl.read_parquet(t.args[0].out) for t in flag_tasks])
    flags = (flags.with_columns(_o=pl.col("reason").replace_strict(order, return_dtype=pl.Int8))
             .sort("_o", "uid").unique("uid", keep="first", maintain_order=True).drop("_o"))

    # 4. write eval sets
    write_tasks = []
    for b in buckets:
        for kind in (RETRIEVAL, CLASSIFICATION):
            members = state / "sets" / f"{b}-{kind}.parquet"
            part = ev.filter((pl.col("bucket") == b) & (pl.col("split") == kind)).select("uid", "label", "tar")
            if not members.exists():
                write_parquet_atomic(members, part)
            target = folder.eval_set(b, kind)
            spec = WriteSetSpec(b, kind, str(members), str(folder.shards.root), str(target),
                                vocab.names if kind == CLASSIFICATION else (), vocab.templates if kind == CLASSIFICATION else (),
                                config.samples_per_shard)
            write_tasks.append(Task(f"write-{b}-{kind}", write_eval_set, (spec,), f"{EVAL_DIR}/{b}/{kind}", outputs=(target,)))
    wstats = job.stage(executor, "write eval sets", write_tasks)

    # 5. manifest
    marker = state / "manifest-updated.json"
    if not marker.exists():
        names = pl.Series(vocab.names, dtype=pl.String)
        marked = pl.concat([sel.select("uid"), flags.select("uid"), hashes.select("uid")])
        no_image = scan_manifest(dir).select("uid").collect().join(marked, on="uid", how="anti")  # nor a mark: not trainable
        table = pl.concat([
            sel.select("uid", split="split", eval_class=pl.when(pl.col("label").is_not_null()).then(
                pl.col("label").replace_strict(list(range(len(names))), names.to_list(), default=None, return_dtype=pl.String))),
            flags.select("uid", split=pl.lit(EXCLUDED), exclude_reason="reason", excluded_by="excluded_by",
                         excluded_distance="excluded_distance"),
            no_image.select("uid", split=pl.lit(NOT_DOWNLOADED)),
        ], how="diagonal_relaxed")
        update_manifest(dir, table, SPLIT_COLUMNS)
        write_json_atomic(marker, {"rows": table.height})

    # 6. training shards
    train_doc = None
    if config.train_shards:
        from ticdata.reshard import reshard

        train_doc = reshard([str(folder.shards.root)], folder.train_dir, executor, manifest=dir, split=TRAIN,
                            samples_per_shard=config.samples_per_shard, overwrite=True, progress=config.progress)

    result = _summary(config, dir, doc, plan, vocab, buckets, hashes, sel, sel_info, flags, hstats, wstats, train_doc,
                      time.monotonic() - started)
    write_json_atomic(folder.evalsets_json, result)
    doc = load_manifest_json(dir)
    doc["evalsets"] = {k: v for k, v in result.items() if k not in ("plan",)}
    doc["buckets"] = {b: doc["buckets"][b] | {"splits": v.get("splits", {})} for b, v in _recount(dir, doc).items() if b in doc["buckets"]}
    write_json_atomic(folder.manifest_json, doc)
    job.finish()
    return result


def _summary(config, dir, doc, plan, vocab, buckets, hashes, sel, sel_info, flags, hstats, wstats, train_doc, seconds) -> dict:
    man = scan_manifest(dir).select("uid", "split").collect()
    bucket_of = hashes.select("uid", "bucket")
    per: dict[str, dict] = {}
    flagged = flags.join(bucket_of, on="uid", how="left").with_columns(pl.col("bucket").fill_null("(not downloaded)"))
    held = sel.group_by("bucket", "split").len()
    for b in buckets:
        rows = hashes.filter(pl.col("bucket") == b).height
        h = {s: n for bb, s, n in held.iter_rows() if bb == b}
        ex = {r: n for bb, r, n in flagged.group_by("bucket", "reason").len().iter_rows() if bb == b}
        held_out = h.get(RETRIEVAL, 0) + h.get(CLASSIFICATION, 0)
        train_out = rows - held_out - sum(ex.values())
        per[b] = {
            "images": rows,
            RETRIEVAL: h.get(RETRIEVAL, 0),
            CLASSIFICATION: h.get(CLASSIFICATION, 0),
            "classes": sel.filter((pl.col("bucket") == b) & (pl.col("split") == CLASSIFICATION))["label"].n_unique(),
            "excluded": {r: ex.get(r, 0) for r in REASONS},
            "train": train_out,
            "ledger": {"train_in": rows, "train_out": train_out, "held_out": held_out, "excluded": sum(ex.values())},
            "paths": {k: f"{EVAL_DIR}/{b}/{k}" for k in (RETRIEVAL, CLASSIFICATION)},
        }
        if config.train_shards:
            per[b]["train_shards"] = f"{TRAIN_DIR}/shards/{b}"
    not_downloaded = flagged.filter(pl.col("bucket") == "(not downloaded)").group_by("reason").len()
    totals = man.group_by("split").len()
    return {
        "plan": plan,
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                       if k not in ("dir", "progress", "overwrite")} | {"retrieval": plan["retrieval_per_bucket"],
                                                                         "per_class": plan["classification_per_class"]},
        "vocabulary": vocab.to_json(),
        "buckets": per,
        "excluded_not_downloaded": dict(not_downloaded.iter_rows()),
        "manifest_splits": dict(sorted(totals.iter_rows())),
        "candidates": sel_info["candidates"],
        "imports": sel_info["imports"],
        "hash": {"tars": len(hstats), "samples": sum(s["samples"] for s in hstats.values()),
                 "undecodable": sum(s["undecodable"] for s in hstats.values()),
                 "no_image": sum(s["no_image"] for s in hstats.values()), "no_uid": sum(s["no_uid"] for s in hstats.values())},
        "written": {k: v for k, v in wstats.items()},
        "train_reshard": None if train_doc is None else train_doc.get("ledger"),
        "seconds": round(seconds, 1),
    }


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
    return "\n".join(lines)
