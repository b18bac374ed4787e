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
5. manifest `split` becomes retrieval / classification / excluded (else train), with
            `exclude_reason`, `eval_class` and the match (eval uid, distance) in `excluded_by`.
6. train    the training rows resharded into DIR/train/shards/<bucket>/ (`tic reshard`'s
            machinery): the only shards the trainer reads, so held-out rows are never read.

DIR/eval/evalsets.json (also under "evalsets" in manifest.json) holds the parameters, the sizes
per bucket, why candidates were passed over, and the training ledger per bucket:
train_in = train_out + held_out + excluded[reason].
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from ticdata.benchmarks import benchmark_from_manifest
from ticdata.classes import COLUMN_PREFIX, Vocabulary, load_vocabulary, resolve_spec
from ticdata.errors import UserError
from ticdata.evalselect import CLASSIFICATION, EXCLUDED, RETRIEVAL, TRAIN, SelectParams, select_bucket
from ticdata.executor import Task, run_stage
from ticdata.manifest import MANIFEST_DIR, MANIFEST_JSON, bucket_table, load_manifest_json, scan_manifest, update_manifest
from ticdata.phash import near_pairs, phash_bytes
from ticdata.storage import atomic_dir, read_json, remove_tmp_leftovers, write_json_atomic, write_parquet_atomic
from ticdata.tars import IMAGE_EXTS, TarWriter, atomic_file

log = logging.getLogger(__name__)
STATE = Path(".tic") / "evalsets"
EVAL_DIR = "eval"
TRAIN_DIR = "train"
REASONS = ("same_image", "same_pair", "near_duplicate")  # precedence when several apply
SPLIT_COLUMNS = {"split": pl.String, "exclude_reason": pl.String, "excluded_by": pl.String, "eval_class": pl.String}
HASH_SCHEMA = {"uid": pl.String, "bucket": pl.String, "tar": pl.String, "sha256": pl.String, "phash": pl.UInt64}


@dataclass(frozen=True)
class EvalConfig:
    dir: Path
    classes: str = "auto"
    seed: int = 0
    retrieval: int | None = None  # per bucket; default: the benchmark's eval.retrieval_per_step
    per_class: int | None = None  # default: the benchmark's eval.classification_per_class
    distance: int = 4
    min_words: int = 3
    max_words: int = 60
    tic_retrieval: Path | None = None
    tic_datacompnet: Path | None = None
    samples_per_shard: int = 10_000
    train_shards: bool = True
    overwrite: bool = False
    progress: bool = True


# ------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class HashSpec:
    tar: str  # absolute path
    rel: str  # <bucket>/<name>.tar, relative to DIR/shards
    bucket: str
    out: str  # parquet


def hash_tar(spec: HashSpec) -> dict:
    """sha256 and pHash of every sample's image in one tar."""
    from ticdata.reshard import iter_samples, sample_uid
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


def flag_training(spec: FlagSpec) -> dict:
    """The training rows of one file that match an eval image or pair: (uid, reason, excluded_by)."""
    ev = pl.read_parquet(spec.eval_table)
    eval_uids = ev["uid"].implode()
    schema = {"uid": pl.String, "reason": pl.String, "excluded_by": pl.String}
    if spec.kind == "hashes":
        df = pl.read_parquet(spec.source, columns=["uid", "sha256", "phash"]).filter(~pl.col("uid").is_in(eval_uids))
        same = df.join(ev.select("sha256", excluded_by=pl.col("uid")), on="sha256", how="inner").unique("uid", keep="first")
        parts = [same.select("uid", reason=pl.lit("same_image"), excluded_by=pl.col("excluded_by"))]
        rest = df.filter(pl.col("phash").is_not_null() & ~pl.col("uid").is_in(same["uid"].implode()))
        near = near_pairs(rest["phash"].to_numpy(), ev["phash"].to_numpy(), spec.distance)  # eval images all have one
        if near.height:
            best = near.sort("distance").unique("q", keep="first")
            parts.append(pl.DataFrame({
                "uid": rest["uid"].to_numpy()[best["q"].to_numpy()].astype(str),
                "reason": "near_duplicate",
                "excluded_by": [f"{u}:{d}" for u, d in zip(ev["uid"].to_numpy()[best["r"].to_numpy()], best["distance"].to_list())],
            }))
        flags = pl.concat([p.cast(schema) for p in parts])
        rows = df.height
    else:
        df = pl.read_parquet(spec.source, columns=["uid", "url", "text"]).filter(~pl.col("uid").is_in(eval_uids))
        hit = df.join(ev.select("url", "text", excluded_by=pl.col("uid")), on=["url", "text"], how="inner").unique("uid", keep="first")
        flags = hit.select("uid", reason=pl.lit("same_pair"), excluded_by=pl.col("excluded_by")).cast(schema)
        rows = df.height
    write_parquet_atomic(Path(spec.out), flags)
    return {"rows": rows, "flagged": flags.height}


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
    import json

    from ticdata.reshard import iter_samples, sample_uid

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


# ----------------------------------------------------------------------------------- driver


def _shard_tars(dir: Path, buckets: list[str]) -> list[tuple[str, Path]]:
    out = []
    for b in buckets:
        folder = dir / "shards" / b
        out += [(b, p) for p in sorted(folder.glob("*.tar"))]
    return out


def _plan_doc(config: EvalConfig, vocab_spec: str, retrieval: int, per_class: int, tars: list[tuple[str, Path]]) -> dict:
    def digest(p: Path | None):
        return hashlib.sha256(Path(p).read_bytes()).hexdigest() if p else None

    return {
        "classes": vocab_spec, "seed": config.seed, "retrieval_per_bucket": retrieval, "classification_per_class": per_class,
        "phash_distance": config.distance, "min_words": config.min_words, "max_words": config.max_words,
        "tic_retrieval": digest(config.tic_retrieval), "tic_datacompnet": digest(config.tic_datacompnet),
        "samples_per_shard": config.samples_per_shard, "train_shards": config.train_shards,
        "tars": [[b, p.name, p.stat().st_size] for b, p in tars],
    }


def _load_rows(dir: Path, hashes: pl.DataFrame, label_column: str | None) -> pl.DataFrame:
    cols = ["uid", "text", "url"] + ([label_column] if label_column else [])
    man = scan_manifest(dir).select(cols).collect()
    return hashes.join(man, on="uid", how="inner")


def _imports(config: EvalConfig, vocab: Vocabulary, rows: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Picks from the official TiC uid maps (uid, split, label), and what could not be placed."""
    from ticdata.tic_pickles import load_datacompnet, load_retrieval

    picks, info = [], {}
    have = rows.filter(pl.col("phash").is_not_null()).select("uid")
    if config.tic_retrieval:
        year2uids = load_retrieval(config.tic_retrieval)
        uids = pl.DataFrame({"uid": [u for us in year2uids.values() for u in us]}, schema={"uid": pl.String}).unique()
        found = uids.join(have, on="uid", how="semi")
        picks.append(found.select("uid", split=pl.lit(RETRIEVAL), label=pl.lit(None, pl.Int32)))
        info["tic_retrieval"] = {"file": str(config.tic_retrieval), "uids": uids.height, "found": found.height,
                                 "not_in_pool_or_not_downloaded": uids.height - found.height}
    if config.tic_datacompnet:
        if vocab.wnids is None:
            raise UserError(f"{config.tic_datacompnet}: DataCompNet labels are WordNet ids; use --classes imagenet "
                            f"(or a vocabulary file with wnid per class), not {vocab.source}")
        index = {w: i for i, w in enumerate(vocab.wnids)}
        data = load_datacompnet(config.tic_datacompnet)
        recs = [(u, index.get(w, -1)) for per in data.values() for w, us in per.items() for u in us]
        unknown = sorted({w for per in data.values() for w in per if w not in index})
        if unknown:
            raise UserError(f"{config.tic_datacompnet}: WordNet ids not in the vocabulary {vocab.source}: {', '.join(unknown[:5])}")
        df = pl.DataFrame(recs, schema={"uid": pl.String, "label": pl.Int32}, orient="row").unique("uid", keep="first")
        found = df.join(have, on="uid", how="semi")
        picks.append(found.select("uid", split=pl.lit(CLASSIFICATION), label="label"))
        info["tic_datacompnet"] = {"file": str(config.tic_datacompnet), "uids": df.height, "found": found.height,
                                   "not_in_pool_or_not_downloaded": df.height - found.height}
    empty = pl.DataFrame(schema={"uid": pl.String, "split": pl.String, "label": pl.Int32})
    out = pl.concat(picks).unique("uid", keep="first") if picks else empty
    return out, info


def _check_imports(config: EvalConfig) -> None:
    from ticdata.tic_pickles import load_datacompnet, load_retrieval

    if config.tic_retrieval:
        load_retrieval(config.tic_retrieval)
    if config.tic_datacompnet:
        load_datacompnet(config.tic_datacompnet)


def _select(config: EvalConfig, dir: Path, state: Path, hashes: pl.DataFrame, vocab: Vocabulary,
            buckets: list[str], retrieval: int, per_class: int) -> tuple[pl.DataFrame, dict]:
    path = state / "selection.parquet"
    info_path = state / "selection.json"
    if path.exists() and info_path.exists():
        return pl.read_parquet(path), read_json(info_path)
    rows = _load_rows(dir, hashes, vocab.column)
    imported, info = _imports(config, vocab, rows)
    params = SelectParams(
        retrieval=0 if config.tic_retrieval else retrieval, per_class=0 if config.tic_datacompnet else per_class,
        seed=config.seed, distance=config.distance, min_words=config.min_words, max_words=config.max_words)
    picks = [imported.join(hashes.select("uid", "bucket"), on="uid", how="inner")]
    per_bucket = {}
    for b in buckets:
        br = rows.filter((pl.col("bucket") == b) & pl.col("phash").is_not_null() & ~pl.col("uid").is_in(imported["uid"].implode()))
        sel, counts = select_bucket(br, params, vocab)
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
        update_manifest(dir, marked.with_columns(split=pl.lit(TRAIN), exclude_reason=pl.lit(None, pl.String),
                                                 excluded_by=pl.lit(None, pl.String), eval_class=pl.lit(None, pl.String)),
                        SPLIT_COLUMNS)


def _recount(dir: Path, doc: dict) -> dict:
    bench = benchmark_from_manifest(doc, dir / MANIFEST_JSON)
    counts = (scan_manifest(dir).group_by("year", "month", "split").len().collect().iter_rows())
    buckets, _ = bucket_table([(int(y), int(m) if m is not None else 1, s, n) for y, m, s, n in counts], bench)
    return buckets


def build_evalsets(config: EvalConfig, executor) -> dict:
    """Run every stage; returns the evalsets.json document."""
    started = time.monotonic()
    dir = Path(config.dir)
    doc = load_manifest_json(dir)
    buckets = list(doc.get("buckets") or {})
    if not buckets:
        raise UserError(f"{dir}/manifest.json: lists no buckets; curate with a benchmark that has steps")
    tars = _shard_tars(dir, buckets)
    if not tars:
        raise UserError(f"{dir}/shards: no tars; run `tic download {dir}` (or `tic reshard ... --out {dir}`) first")
    schema = scan_manifest(dir).collect_schema()
    vocab_spec = resolve_spec(config.classes, list(schema))
    bench_eval = doc["benchmark"].get("eval", {})
    retrieval = config.retrieval if config.retrieval is not None else int(bench_eval.get("retrieval_per_step", 1000))
    per_class = config.per_class if config.per_class is not None else int(bench_eval.get("classification_per_class", 50))
    plan = _plan_doc(config, vocab_spec, retrieval, per_class, tars)
    _check_imports(config)  # refuse a bad pickle before anything is changed

    state = dir / STATE
    final = dir / EVAL_DIR / "evalsets.json"
    if final.exists():
        done = read_json(final)
        if done.get("plan") == plan and not config.overwrite:
            log.info("%s: eval sets already built with these parameters; nothing to do", dir / EVAL_DIR)
            return done
        if not config.overwrite:
            raise UserError(f"{dir / EVAL_DIR}: eval sets built with other parameters or inputs; pass --overwrite to rebuild them")
    if (state / "plan.json").exists() and (read_json(state / "plan.json") != plan or config.overwrite):
        shutil.rmtree(state)
    if not (state / "plan.json").exists():
        if final.exists() or config.overwrite:
            _reset_splits(dir)
        shutil.rmtree(dir / EVAL_DIR, ignore_errors=True)
        state.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state / "plan.json", plan)
    remove_tmp_leftovers(state)
    completions = state / "completions"

    # 1. hash
    hash_tasks = []
    for b, p in tars:
        rel = f"{b}/{p.name}"
        out = state / "hashes" / b / f"{p.stem}.parquet"
        hash_tasks.append(Task(f"hash-{b}-{p.stem}", hash_tar, (HashSpec(str(p.resolve()), rel, b, str(out)),), str(p)))
    for t in hash_tasks:
        Path(t.args[0].out).parent.mkdir(parents=True, exist_ok=True)
    hstats = run_stage(executor, "hash", hash_tasks, completions, config.progress)
    hashes = pl.concat([pl.read_parquet(t.args[0].out) for t in hash_tasks]).unique("uid", keep="first")

    # 2. select
    vocab_values = None
    if vocab_spec.startswith(COLUMN_PREFIX):
        col = vocab_spec[len(COLUMN_PREFIX):]
        vocab_values = scan_manifest(dir).select(pl.col(col).cast(pl.String).unique()).collect()[col].to_list()
    vocab = load_vocabulary(vocab_spec, vocab_values)
    sel, sel_info = _select(config, dir, state, hashes, vocab, buckets, retrieval, per_class)

    # 3. decontaminate
    ev = sel.join(hashes.select("uid", "sha256", "phash", "tar"), on="uid", how="inner").join(
        scan_manifest(dir).select("uid", "url", "text").collect(), on="uid", how="inner")
    eval_table = state / "eval.parquet"
    if not eval_table.exists():
        write_parquet_atomic(eval_table, ev)
    flag_tasks = []
    (state / "flags").mkdir(exist_ok=True)
    for t in hash_tasks:
        src = t.args[0].out
        flag_tasks.append(Task(f"flag-{t.key}", flag_training, (FlagSpec("hashes", src, str(eval_table), str(state / "flags" / f"{t.key}.parquet"), config.distance),), src))
    for i, part in enumerate(sorted((dir / MANIFEST_DIR).glob("year=*/*.parquet"))):
        flag_tasks.append(Task(f"flag-pairs-{i:06d}", flag_training, (FlagSpec("pairs", str(part), str(eval_table), str(state / "flags" / f"pairs-{i:06d}.parquet"), config.distance),), str(part)))
    run_stage(executor, "decontaminate", flag_tasks, completions, config.progress)
    order = {r: i for i, r in enumerate(REASONS)}
    flags = pl.concat([pl.read_parquet(t.args[0].out) for t in flag_tasks])
    flags = (flags.with_columns(_o=pl.col("reason").replace_strict(order, return_dtype=pl.Int8))
             .sort("_o", "uid").unique("uid", keep="first", maintain_order=True).drop("_o"))

    # 4. write eval sets
    write_tasks = []
    (state / "sets").mkdir(exist_ok=True)
    for b in buckets:
        for kind in (RETRIEVAL, CLASSIFICATION):
            members = state / "sets" / f"{b}-{kind}.parquet"
            part = ev.filter((pl.col("bucket") == b) & (pl.col("split") == kind)).select("uid", "label", "tar")
            if not members.exists():
                write_parquet_atomic(members, part)
            spec = WriteSetSpec(b, kind, str(members), str(dir / "shards"), str(dir / EVAL_DIR / b / kind),
                                vocab.names if kind == CLASSIFICATION else (), vocab.templates if kind == CLASSIFICATION else (),
                                config.samples_per_shard)
            write_tasks.append(Task(f"write-{b}-{kind}", write_eval_set, (spec,), f"{EVAL_DIR}/{b}/{kind}"))
    wstats = run_stage(executor, "write eval sets", write_tasks, completions, config.progress)

    # 5. manifest
    marker = state / "manifest-updated.json"
    if not marker.exists():
        names = pl.Series(vocab.names, dtype=pl.String)
        table = pl.concat([
            sel.select("uid", split="split", exclude_reason=pl.lit(None, pl.String), excluded_by=pl.lit(None, pl.String),
                       eval_class=pl.when(pl.col("label").is_not_null()).then(
                           pl.col("label").replace_strict(list(range(len(names))), names.to_list(), default=None, return_dtype=pl.String))),
            flags.select("uid", split=pl.lit(EXCLUDED), exclude_reason="reason", excluded_by="excluded_by", eval_class=pl.lit(None, pl.String)),
        ], how="vertical_relaxed")
        update_manifest(dir, table, SPLIT_COLUMNS)
        write_json_atomic(marker, {"rows": table.height})

    # 6. training shards
    train_doc = None
    if config.train_shards:
        from ticdata.reshard import reshard

        train_doc = reshard([str(dir / "shards")], dir / TRAIN_DIR, executor, manifest=dir, split=TRAIN,
                            samples_per_shard=config.samples_per_shard, overwrite=True, progress=config.progress)

    result = _summary(config, dir, doc, plan, vocab, buckets, hashes, sel, sel_info, flags, hstats, wstats, train_doc,
                      time.monotonic() - started)
    write_json_atomic(final, result)
    doc = load_manifest_json(dir)
    doc["evalsets"] = {k: v for k, v in result.items() if k not in ("plan",)}
    doc["buckets"] = {b: doc["buckets"][b] | {"splits": v.get("splits", {})} for b, v in _recount(dir, doc).items() if b in doc["buckets"]}
    write_json_atomic(dir / MANIFEST_JSON, doc)
    shutil.rmtree(state, ignore_errors=True)
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
    if doc.get("excluded_not_downloaded"):
        lines.append(f"excluded rows without an image: {doc['excluded_not_downloaded']}")
    return "\n".join(lines)
