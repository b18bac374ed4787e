"""`tic evalsets DIR`: held-out retrieval and classification sets per bucket; decontaminated training.

Stages (each resumable; a killed run redoes only what is missing). No stage reads manifest rows in
the driver: it holds names, counts, the candidates of one bucket and the chosen sets, so its
memory follows buckets, files and set sizes, never the pool; a task holds one file or one range.

1. hash     one task per downloaded tar: sha256 of the stored image bytes and a 64-bit pHash
            per sample (DIR/.tic/evalsets/hashes/).
2. join     the hashes meet the manifest files by uid range; per manifest file (a "unit") its
            images, and which rows repeat an image or a caption in their bucket (`evalsets_join`).
3. select   per unit the counts `ticdata.evalselect`'s rule reports, then per bucket, in the
            driver, the rule itself over candidates fetched by seeded rank (`evalsets_pick`): the
            retrieval set (benchmark's `retrieval_per_step`) and the classification set
            (`classification_per_class` per class); or the official TiC uid maps are imported.
4. decontam one task per unit: a training row, in any bucket, is excluded when its image equals an
            eval image (`same_image`, sha256), when its (url, text) equals an eval pair
            (`same_pair`), or when its pHash is within `--phash-distance` bits of an eval image's
            (`near_duplicate`); the first reason in that order is kept.
5. write    one task per eval set: CLIP_benchmark's webdataset layout,
            DIR/eval/<bucket>/<retrieval|classification>/{test/{0..n-1}.tar, test/nshards.txt,
            dataset_type.txt, classnames.txt, zeroshot_classification_templates.txt} (members
            .jpg, .txt, .cls, .json; key = uid) and samples.parquet, the list tic's evaluator reads.
6. manifest one task per manifest file: `split` becomes retrieval / classification / excluded /
            not_downloaded (no image in the shards: a failed, refused or skipped download), else
            train: `split == "train"` is exactly the trainable rows. With `exclude_reason`,
            `eval_class`, the matching eval uid in `excluded_by` and, for near_duplicate only, the
            pHash distance in bits in `excluded_distance` (Int32; null for same_image and
            same_pair, which pHash did not decide).
7. train    the training rows resharded into DIR/train/shards/<bucket>/ (`tic reshard`'s
            machinery): the only shards the trainer reads, so held-out rows are never read.

DIR/eval/evalsets.json (also under "evalsets" in manifest.json) holds the parameters, the sizes
per bucket, why candidates were passed over, and the training ledger per bucket:
train_in = train_out + held_out + excluded[reason].
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from ticdata.benchmarks import benchmark_from_manifest, bucket_names
from ticdata.classes import COLUMN_PREFIX, Vocabulary, load_vocabulary, resolve_spec
from ticdata.documents import load_evalsets_doc
from ticdata.errors import UserError
from ticdata.evalselect import CLASSIFICATION, RETRIEVAL, TRAIN, SelectParams, caption_check
from ticdata.evalsets_imports import check_imports, official_picks, official_tables
from ticdata.evalsets_mark import SPLIT_COLUMNS
from ticdata.evalsets_pick import Fetcher, Tally, fetch_details, select_in_bucket, tallies
from ticdata.evalsets_report import format_evalsets_table, starved, summary
from ticdata.evalsets_stages import Units, build_units, decontaminate, map_files, mark, range_count, reset, tally
from ticdata.evalsets_tasks import REASONS, HashSpec, WriteSetSpec, hash_tar, write_eval_set
from ticdata.executor import Task
from ticdata.job import Job
from ticdata.layout import EVAL_DIR, CuratedFolder
from ticdata.manifest import bucket_table, checked_manifest_files, list_bucket_table, load_manifest_json
from ticdata.storage import read_json, write_json_atomic, write_parquet_atomic

log = logging.getLogger(__name__)
__all__ = ["REASONS", "SPLIT_COLUMNS", "TRAIN", "EvalConfig", "build_evalsets", "format_evalsets_table", "make_job"]


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


def _columns(files: list[Path]) -> list[str]:
    """The manifest's column names as `scan_manifest` gives them (the first file's footer, then year)."""
    return [*pl.read_parquet_schema(files[0]), "year"]


def make_job(config: EvalConfig) -> tuple[Job, dict]:
    """The eval-set job on config.dir (checked before anything is written) and the facts its plan
    rests on: the buckets, tars, manifest files, vocabulary spec and set sizes."""
    folder = CuratedFolder(Path(config.dir).resolve())
    doc = load_manifest_json(folder.root)
    buckets = bucket_names(doc, folder.manifest_json)
    tars = _shard_tars(folder, buckets)
    if not tars:
        raise UserError(f"{folder.root}/shards: no tars; run `tic download {folder.root}` (or `tic reshard ... --out {folder.root}`) first")
    files = checked_manifest_files(folder.root)
    vocab_spec = resolve_spec(config.classes, _columns(files))
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
    ranges = range_count(files)
    job = Job(folder.root, "evalsets", plan, outputs=outputs, overwrite=config.overwrite, progress=config.progress,
              describe="eval sets built with other parameters or inputs", defer_replace=True,
              split={"layout": "units", "files": len(files), "ranges": ranges})
    facts = {"doc": doc, "buckets": buckets, "tars": tars, "vocab_spec": vocab_spec, "retrieval": retrieval,
             "per_class": per_class, "plan": plan, "share": share, "files": files, "ranges": ranges}
    return job.check(), facts


def _imports_info(info: dict, placed: pl.DataFrame) -> dict:
    """Where the official map's year and tic's dating put a uid in different buckets, counted."""
    if placed.height:  # the official map's year decides the bucket; where tic dates the row elsewhere, count it
        pairs = placed.filter(pl.col("official_bucket").fill_null("(none)") != pl.col("tic_bucket")).group_by(
            "official_bucket", "tic_bucket").len().sort("official_bucket", "tic_bucket")
        info["bucket_disagreements"] = {f"{o or '(none)'} -> {t}": n for o, t, n in pairs.iter_rows()}
        info["placed_by_official_year"] = placed.filter(pl.col("official_bucket").is_not_null()).height
    return info


def _select(config: EvalConfig, job: Job, executor, units: Units, tables: list, imported: str, vocab: Vocabulary,
            buckets: list[str], sizes: dict, scorer_factory=None) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """The chosen rows (uid, bucket, split, label), why candidates were passed over, and the eval
    table (the chosen rows with their hashes, tar, url and caption)."""
    path = job.path("selection.json")
    if path.exists():
        saved = read_json(path)
        return pl.DataFrame(saved["sel"], schema=SEL_SCHEMA), saved["info"], pl.DataFrame(saved["ev"], schema=EV_SCHEMA)
    check = None
    if config.caption_model is not None:
        if scorer_factory is None:
            raise UserError("--caption-model: the caption filter needs the trainer's text encoder; run it through `tic evalsets`")
        check = caption_check(scorer_factory(), vocab, config.caption_threshold)
    params = SelectParams(
        retrieval=0 if config.tic_retrieval else sizes["retrieval"], per_class=0 if config.tic_datacompnet else sizes["per_class"],
        seed=config.seed, distance=config.distance, min_words=config.min_words, max_words=config.max_words)
    counts = tally(job, executor, units, imported, params, vocab)
    found = pl.DataFrame(counts["found"], schema={"uid": pl.String, "tic_bucket": pl.String, "unit": pl.Int32}, orient="row")
    picked, info = official_picks(tables, found)
    placed = picked.join(found, on="uid", how="inner")
    picks = [placed.with_columns(bucket=pl.coalesce("official_bucket", "tic_bucket"))]
    per_bucket, merged, share = {}, tallies(counts, buckets), sizes["share"]
    for i, b in enumerate(buckets):
        t = merged.get(b, Tally())
        size = params.retrieval if share is None or config.tic_retrieval else round(share * t.images)
        fetcher = Fetcher(job, executor, [units.specs[u] for u in t.units], b, f"{i:04d}", check is not None)
        sel, per_bucket[b] = select_in_bucket(t, replace(params, retrieval=size), check, fetcher)
        picks.append(sel.with_columns(bucket=pl.lit(b)))
        log.info("%s: %d retrieval, %d classification (%d classes) from %d images", b, per_bucket[b][RETRIEVAL],
                 per_bucket[b][CLASSIFICATION], per_bucket[b]["classes"], per_bucket[b]["images"])
    sel = pl.concat([p.select(*SEL_SCHEMA) for p in picks]).unique("uid", keep="first").sort("bucket", "split", "uid")
    details = fetch_details(job, executor, {u.index: u for u in units.specs}, sel.select("uid", "unit"))
    ev = sel.drop("unit").join(details.select("uid", "sha256", "phash", "tar"), on="uid", how="inner").join(
        details.select("uid", "url", "text"), on="uid", how="inner")
    info = {"imports": _imports_info(info, placed), "candidates": per_bucket}
    write_json_atomic(path, {"sel": sel.to_dict(as_series=False), "info": info, "ev": ev.to_dict(as_series=False)})
    return sel, info, ev


SEL_SCHEMA = {"uid": pl.String, "bucket": pl.String, "split": pl.String, "label": pl.Int32, "unit": pl.Int32}
EV_SCHEMA = {"uid": pl.String, "bucket": pl.String, "split": pl.String, "label": pl.Int32, "sha256": pl.String,
             "phash": pl.UInt64, "tar": pl.String, "url": pl.String, "text": pl.String}


def _write_sets(job: Job, executor, folder: CuratedFolder, ev: pl.DataFrame, buckets: list[str], vocab: Vocabulary,
                samples_per_shard: int) -> dict:
    """Stage write eval sets: one task per (bucket, kind), its members written by the driver."""
    tasks = []
    for b in buckets:
        for kind in (RETRIEVAL, CLASSIFICATION):
            members = job.path("sets", f"{b}-{kind}.parquet")
            part = ev.filter((pl.col("bucket") == b) & (pl.col("split") == kind)).select("uid", "label", "tar")
            if not members.exists():
                write_parquet_atomic(members, part)
            target = folder.eval_set(b, kind)
            spec = WriteSetSpec(b, kind, str(members), str(folder.shards.root), str(target),
                                vocab.names if kind == CLASSIFICATION else (), vocab.templates if kind == CLASSIFICATION else (),
                                samples_per_shard)
            tasks.append(Task(f"write-{b}-{kind}", write_eval_set, (spec,), f"{EVAL_DIR}/{b}/{kind}", outputs=(target,)))
    return job.stage(executor, "write eval sets", tasks)


def _mark_manifest(job: Job, executor, units: Units, sel: pl.DataFrame, vocab: Vocabulary, bench, dir: Path) -> dict:
    """Stage manifest: the split marks per file (the chosen rows with their class name); the
    manifest.json's column types; the files' counts."""
    marks = job.path("marks.parquet")
    if not marks.exists():
        names = pl.Series(vocab.names, dtype=pl.String)
        write_parquet_atomic(marks, sel.select("uid", split="split", eval_class=pl.when(pl.col("label").is_not_null()).then(
            pl.col("label").replace_strict(list(range(len(names))), names.to_list(), default=None, return_dtype=pl.String))))
    marked = mark(job, executor, units, str(marks), bench.granularity)
    doc = load_manifest_json(dir)
    doc["columns"] = doc.get("columns", {}) | {c: str(t) for c, t in SPLIT_COLUMNS.items()}
    write_json_atomic(CuratedFolder(dir).manifest_json, doc)
    return marked


def _bucket_splits(marked: dict, bench) -> dict:
    """The bucket table (`manifest.count_buckets`) from the mark tasks' counts."""
    counts = [tuple(c) for s in marked.values() for c in s["counts"]]
    return (list_bucket_table(counts, bench) if bench.granularity == "list" else bucket_table(counts, bench))[0]


def build_evalsets(config: EvalConfig, executor, scorer_factory=None) -> dict:
    """Run every stage; returns the evalsets.json document. `scorer_factory` builds the caption
    filter's text scorer ((texts, class texts) -> cosine similarities) when the selection runs."""
    started = time.monotonic()
    job, facts = make_job(config)
    folder = CuratedFolder(job.out)
    dir, files = folder.root, facts["files"]
    job.clear = lambda: reset(job, executor, files)
    if job.open().done:
        log.info("%s: eval sets already built with these parameters; nothing to do", folder.eval_dir)
        return load_evalsets_doc(folder.evalsets_json)
    doc, buckets, tars, plan = facts["doc"], facts["buckets"], facts["tars"], facts["plan"]
    state = job.state

    # 1. hash
    hash_tasks = []
    for b, p in tars:
        out = state / "hashes" / b / f"{p.stem}.parquet"
        hash_tasks.append(Task(f"hash-{b}-{p.stem}", hash_tar, (HashSpec(str(p.resolve()), f"{b}/{p.name}", b, str(out)),), str(p),
                               outputs=(out,)))
    hstats = job.stage(executor, "hash", hash_tasks)
    job.replace_outputs()  # every tar read: only now do the earlier eval sets and splits go (--overwrite)

    # 2. join: per manifest file its images and repeats
    spec = facts["vocab_spec"]
    column = spec[len(COLUMN_PREFIX):] if spec.startswith(COLUMN_PREFIX) else None
    maps = map_files(job, executor, files, [t.args[0].out for t in hash_tasks], facts["ranges"], column)
    vocab = load_vocabulary(spec, maps["values"] if column else None)
    bench = benchmark_from_manifest(doc, folder.manifest_json)
    tables = official_tables(config, vocab, bench, buckets)
    imported = job.path("imported.parquet")
    if not imported.exists():
        write_parquet_atomic(imported, pl.concat([t.select("uid") for _, t, _ in tables] or [pl.DataFrame(schema={"uid": pl.String})]))
    units = build_units(job, executor, files, maps, facts["ranges"], str(imported))

    # 3. select
    sel, sel_info, ev = _select(config, job, executor, units, tables, str(imported), vocab, buckets, facts, scorer_factory)

    # 4. decontaminate
    eval_table = job.path("eval.parquet")
    if not eval_table.exists():
        write_parquet_atomic(eval_table, ev)
    flagged = decontaminate(job, executor, units, str(eval_table), config.distance)

    # 5. write eval sets, 6. manifest
    wstats = _write_sets(job, executor, folder, ev, buckets, vocab, config.samples_per_shard)
    marked = _mark_manifest(job, executor, units, sel, vocab, bench, dir)

    # 7. training shards
    train_doc = None
    if config.train_shards:
        from ticdata.reshard import reshard

        train_doc = reshard([str(folder.shards.root)], folder.train_dir, executor, manifest=dir, split=TRAIN,
                            samples_per_shard=config.samples_per_shard, overwrite=True, progress=config.progress)

    splits: dict = {}
    for s in marked.values():
        for k, n in s["splits"].items():
            splits[k] = splits.get(k, 0) + n
    result = summary(config, plan, vocab, buckets, units.images, sel, sel_info, flagged, splits, hstats, wstats, train_doc,
                     time.monotonic() - started)
    write_json_atomic(folder.evalsets_json, result)
    for warning in starved(result):
        log.warning("%s", warning)
    doc = load_manifest_json(dir)
    doc["evalsets"] = {k: v for k, v in result.items() if k not in ("plan",)}
    table = _bucket_splits(marked, benchmark_from_manifest(doc, folder.manifest_json))
    doc["buckets"] = {b: doc["buckets"][b] | {"splits": v.get("splits", {})} for b, v in table.items() if b in doc["buckets"]}
    write_json_atomic(folder.manifest_json, doc)
    job.finish()
    return result
