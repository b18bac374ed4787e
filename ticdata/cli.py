"""The `tic` command line. Each verb parses its flags and calls one library function.

Bad input exits with status 2 and one line on stderr; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ticdata import __version__
from ticdata.errors import UserError

log = logging.getLogger("ticdata")


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return n


def _executor(args):
    from ticdata.executor import InlineExecutor, RayExecutor

    if args.executor == "inline":
        if args.ray_address:
            raise UserError("--ray-address needs --executor ray")
        return InlineExecutor()
    return RayExecutor(address=args.ray_address, num_cpus=args.num_cpus)


def _add_executor_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--ray-address", metavar="A", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray sized to this machine)")
    g.add_argument("--executor", choices=["ray", "inline"], default="ray",
                   help="ray (default) runs tasks in parallel; inline runs them one by one in this process, for debugging")
    g.add_argument("--num-cpus", type=_positive, metavar="N", help="CPUs of the local Ray instance (default: all)")


def cmd_synth_pool(args) -> int:
    from ticdata.synth.pool import make_pool

    summary = make_pool(
        Path(args.out), rows=args.rows, seed=args.seed, rows_per_file=args.rows_per_file,
        overwrite=args.overwrite, progress=not args.quiet,
    )
    print(f"wrote {summary['rows']:,} rows in {summary['files']} files to {args.out} "
          f"({summary['unique_pairs']:,} pairs, {summary['resightings']:,} re-sightings, "
          f"{sum(summary['planted'].values()):,} planted bad rows)")
    return 0


def cmd_synth_world(args) -> int:
    from ticdata.synth.world import make_world

    summary = make_world(
        Path(args.out), seed=args.seed, base_url=args.base_url, pairs_per_step=args.pairs_per_step,
        image_size=args.image_size, overwrite=args.overwrite, fail_share=args.fail_share,
    )
    print(f"wrote the synthetic world to {args.out}: {summary['unique_pairs']:,} pairs, {summary['rows']:,} rows, "
          f"{len(summary['concepts'])} concepts, images at {summary['base_url']} (serve them with `tic serve-images`)")
    return 0


def cmd_serve_images(args) -> int:
    from ticdata.serve import serve_forever

    print(f"serving the synthetic world on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve_forever(args.host, args.port, slow_seconds=args.slow_seconds)
    return 0


def cmd_curate(args) -> int:
    from ticdata.columns import ColumnMap
    from ticdata.curate import CurateConfig, curate, finished, make_plan
    from ticdata.manifest import format_bucket_table

    config = CurateConfig(
        inputs=tuple(args.inputs),
        out=Path(args.out),
        benchmark=args.benchmark,
        granularity=args.granularity,
        columns=ColumnMap.parse(args.column),
        input_format=args.format,
        collinfo=args.collinfo,
        partitions=args.partitions,
        partition_rows=args.partition_rows,
        chunk_rows=args.chunk_rows,
        shuffle_compression=args.shuffle_compression,
        overwrite=args.overwrite,
        keep_work=args.keep_work,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        progress=not args.quiet,
    )
    plan = make_plan(config)  # validates every input before Ray starts or anything is written
    doc = finished(config, plan)
    if doc is not None:
        log.info("%s is already curated from these inputs; nothing to do", config.out)
    else:
        with _executor(args) as ex:
            doc = curate(config, ex, plan)
    print(format_bucket_table(doc))
    print(f"manifest: {Path(args.out).resolve() / 'manifest'}  ({doc['rows']:,} rows)")
    return 0


def cmd_uids_export(args) -> int:
    from ticdata.uidsplits import export_uids

    written = export_uids(Path(args.dir), Path(args.out), split=None if args.split == "all" else args.split)
    for name, n in written.items():
        print(f"{name:<12} {n:>12,} uids  {Path(args.out) / (name + '.npy')}")
    return 0


def cmd_uids_import(args) -> int:
    from ticdata.manifest import format_bucket_table
    from ticdata.uidsplits import import_uids

    doc = import_uids(Path(args.dir), args.uid_files, Path(args.out), overwrite=args.overwrite)
    print(format_bucket_table(doc))
    for name, v in doc["inputs"]["uid_lists"].items():
        if v["missing"]:
            print(f"{name}: {v['missing']:,} of {v['uids']:,} listed uids are not in {args.dir}")
    return 0


def cmd_download(args) -> int:
    from ticdata.download import DownloadConfig, download, format_summary
    from ticdata.fetch import FetchPolicy

    config = DownloadConfig(
        dir=Path(args.dir),
        image_size=args.image_size,
        resize_mode=args.resize_mode,
        resize_only_if_bigger=not args.resize_always,
        encode_quality=args.encode_quality,
        samples_per_shard=args.samples_per_shard,
        threads=args.threads,
        timeout=args.timeout,
        retries=args.retries,
        policy=FetchPolicy(allow_private_hosts=args.allow_private_hosts, max_bytes=args.max_bytes, max_pixels=args.max_pixels),
        buckets=tuple(b.strip() for b in args.buckets.split(",")) if args.buckets else None,
        user_agent_token=args.user_agent_token,
        progress=not args.quiet,
    )
    with _executor(args) as ex:
        summary = download(config, ex)
    print(format_summary(summary))
    print(f"shards: {Path(args.dir).resolve() / 'shards'}")
    return 0


def cmd_reshard(args) -> int:
    from ticdata.reshard import format_reshard_table, plan_reshard, reshard

    kw = dict(
        manifest=Path(args.manifest) if args.manifest else None, uid_files=args.uids,
        samples_per_shard=args.samples_per_shard, split=None if args.split == "all" else args.split,
        tars_per_task=args.tars_per_task, overwrite=args.overwrite,
    )
    plan = plan_reshard(args.shards, Path(args.out), **kw)  # validates before Ray starts
    with _executor(args) as ex:
        doc = reshard(args.shards, Path(args.out), ex, progress=not args.quiet, plan=plan, **kw)
    print(format_reshard_table(doc))
    print(f"shards: {Path(args.out).resolve() / 'shards'}")
    return 0


def cmd_evalsets(args) -> int:
    from ticdata.evalsets import EvalConfig, build_evalsets, format_evalsets_table

    config = EvalConfig(
        dir=Path(args.dir), classes=args.classes, seed=args.seed, retrieval=args.retrieval, per_class=args.per_class,
        distance=args.phash_distance, min_words=args.min_words, max_words=args.max_words,
        tic_retrieval=Path(args.tic_retrieval) if args.tic_retrieval else None,
        tic_datacompnet=Path(args.tic_datacompnet) if args.tic_datacompnet else None,
        samples_per_shard=args.samples_per_shard, train_shards=not args.no_train_shards, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if config.distance < 0 or config.distance > 31:
        raise UserError(f"--phash-distance {config.distance}: choose 0..31 bits (default 4)")
    for p in (config.tic_retrieval, config.tic_datacompnet):
        if p is not None and not p.is_file():
            raise UserError(f"{p}: no such file")
    with _executor(args) as ex:
        doc = build_evalsets(config, ex)
    print(format_evalsets_table(doc))
    print(f"eval sets: {Path(args.dir).resolve() / 'eval'}")
    if config.train_shards:
        print(f"training shards: {Path(args.dir).resolve() / 'train' / 'shards'}")
    return 0


_TRAIN_FLAGS = ("data", "out", "method", "samples_per_step", "batch_size", "model", "lr", "warmup", "weight_decay",
                "precision", "seed", "workers", "device", "accum_freq", "buffer", "lwf_weight", "lwf_data",
                "patching_alpha", "checkpoint_every", "log_every", "threads")


def cmd_train(args) -> int:
    from train.config import load_config
    from train.loop import format_run_table, run_training

    overrides = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    if args.grad_checkpointing:
        overrides["grad_checkpointing"] = True
    if args.deterministic:
        overrides["deterministic"] = True
    if args.steps:
        overrides["steps"] = args.steps
    overrides["progress"] = not args.quiet
    for item in args.set or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        overrides[k.strip().replace("-", "_")] = v.strip()
    cfg = load_config(args.config, overrides)
    doc = run_training(cfg)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(format_run_table(doc))
        print(f"checkpoints: {Path(cfg.out).resolve() / 'checkpoints'}")
    return 0


def cmd_eval(args) -> int:
    from train.evaluate import evaluate_run, format_matrix

    static = {}
    for item in args.static or []:
        if "=" not in item:
            raise UserError(f"--static {item!r}: expected NAME=FOLDER (a CLIP_benchmark wds folder)")
        name, path = item.split("=", 1)
        static[name.strip()] = Path(path.strip())
    for run in args.runs:
        m = evaluate_run(Path(run), static, device=args.device, batch=args.batch_size, progress=not args.quiet)
        print(format_matrix(m))
        print(f"matrix: {Path(run).resolve() / 'eval' / 'matrix.json'}")
    return 0


def cmd_report(args) -> int:
    from train.report import build_report, load_matrices, metrics_table

    path = build_report([Path(r) for r in args.runs], Path(args.out))
    print(metrics_table(load_matrices([Path(r) for r in args.runs])))
    print(f"report: {path.resolve()} (and {path.with_suffix('.html').resolve()})")
    return 0


def cmd_demo(args) -> int:
    from ticdata.demo import DEFAULT_METHODS, run_demo
    from train.mixture import METHODS
    from train.report import load_matrices, metrics_table

    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in (args.methods or ",".join(DEFAULT_METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)} or 'all'")
    res = run_demo(Path(args.out), methods, port=args.port, pairs=args.pairs_per_step, progress=not args.quiet)
    print()
    print(metrics_table(load_matrices([Path(r) for r in res["runs"]])))
    print()
    print("timestamp audit of the world (" + res["audit_report"] + "):")
    print("  " + res["audit"].replace("\n", "\n  "))
    print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in res["times"].items()) + f"; total {res['seconds']}")
    print(f"report: {Path(res['report']).resolve()}")
    return 0


def cmd_audit(args) -> int:
    from ticdata.audit import check_fail_if, headline, run_audit
    from ticdata.audit_report import write_report

    with _executor(args) as ex:
        result = run_audit(Path(args.dir), Path(args.out), ex, fix=Path(args.fix) if args.fix else None, progress=not args.quiet)
    report = write_report(result, Path(args.out))
    print(headline(result))
    print(f"audit: {Path(args.out).resolve() / 'audit.json'}; report: {report.resolve()}")
    if "fix" in result:
        print(f"corrected manifest: {result['fix']['out']} ({result['fix']['rows_moved']:,} rows moved)")
    hits = check_fail_if(result, args.fail_if or [])
    if hits:
        print("failed: " + "; ".join(hits), file=sys.stderr)
        return 3
    return 0


def cmd_benchmarks(args) -> int:
    from ticdata.benchmarks import load_benchmark, shipped_names

    for name in shipped_names():
        b = load_benchmark(name)
        steps = ", ".join(s.name for s in b.steps)
        print(f"{name:<14} {steps}\n{'':<14} {b.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tic",
        description="Time-continual CLIP toolkit: recover when each image-text pair first appeared, "
        "split pools into time buckets, and (in later verbs) fetch, train and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"tic {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    # The same flags after the verb (`tic curate ... -q`); SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or info logs")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logs")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    synth = sub.add_parser("synth", help="synthetic data for demos, tests and benchmarks",
                           description="Generate synthetic inputs that need no internet.")
    synth_sub = synth.add_subparsers(dest="what", metavar="WHAT", required=True)
    sp = synth_sub.add_parser("pool", parents=[common], help="a CommonCrawl-style pool in DataComp's Parquet layout",
                              description="A CommonCrawl-style pool (uid, url, text, source, crawl_time, ...) with "
                              "re-sightings of a uid across snapshots and files and bad rows at known rates; "
                              "the planted counts are written to OUT/_synth.json.")
    sp.add_argument("--rows", type=_positive, required=True, help="number of rows to write")
    sp.add_argument("--out", required=True, help="output folder (pool-NNNNN.parquet, _synth.json)")
    sp.add_argument("--seed", type=int, default=0, help="random seed; equal seeds give equal bytes (default 0)")
    sp.add_argument("--rows-per-file", type=_positive, default=1_000_000, help="rows per Parquet file (default 1,000,000)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing pool in OUT")
    sp.set_defaults(func=cmd_synth_pool)

    sw = synth_sub.add_parser(
        "world", parents=[common], help="a drifting synthetic image-text world (2014-2022) and its pool",
        description="A deterministic world of image-text pairs for 2014-2022 whose concepts change look (shape, texture, "
        "hue) at every step of the demo benchmark, some appearing late and one fading out; writes OUT/world-*.parquet "
        "(a CommonCrawl-style pool with re-sightings, for `tic curate --benchmark demo`) and OUT/_world.json. The "
        "images are rendered on request by `tic serve-images`.")
    sw.add_argument("--out", required=True, help="output folder")
    sw.add_argument("--seed", type=int, default=0, help="world seed; equal seeds give equal bytes (default 0)")
    sw.add_argument("--base-url", default="http://127.0.0.1:8765",
                    help="where `tic serve-images` will listen (default http://127.0.0.1:8765)")
    sw.add_argument("--pairs-per-step", type=_positive, default=3300, help="unique pairs per demo step (default 3,300)")
    sw.add_argument("--image-size", type=_positive, default=64, help="image side in pixels (default 64)")
    sw.add_argument("--fail-share", type=float, default=0.02,
                    help="share of pairs whose URL fails the way the web does: 404, 500, slow, truncated, corrupt, "
                    "redirect, huge, noai (default 0.02)")
    sw.add_argument("--overwrite", action="store_true", help="replace a world in OUT")
    sw.set_defaults(func=cmd_synth_world)

    si = sub.add_parser(
        "serve-images", parents=[common], help="serve the synthetic world's images over HTTP",
        description="An HTTP server that renders each synthetic pair's JPEG from its URL (/img/...), with Last-Modified "
        "and, for some, EXIF DateTimeOriginal; /fail/<kind>/... fails on purpose: 404, 500, slow, truncated, corrupt, "
        "redirect, huge (a decompression bomb), noai (X-Robots-Tag). Binds only to --host.")
    si.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    si.add_argument("--port", type=int, default=8765, help="port (default 8765, the world's default base URL)")
    si.add_argument("--slow-seconds", type=float, default=5.0, help="delay of the /fail/slow/ route (default 5)")
    si.set_defaults(func=cmd_serve_images)

    cp = sub.add_parser(
        "curate", parents=[common], help="recover timestamps, deduplicate, split into year buckets",
        description="Read pools (Parquet in DataComp's layout, CommonCrawl WARC/WAT, YFCC100M metadata, RedCaps "
        "annotations), date every row (exact capture/upload/post time, else its CommonCrawl snapshot's start), drop "
        "bad rows with a counted reason, keep each uid's earliest sighting and write OUT/manifest/year=YYYY/*.parquet "
        "and OUT/manifest.json. Killed and rerun, it resumes and produces the same bytes.")
    cp.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders of files")
    cp.add_argument("--out", required=True, help="output folder")
    cp.add_argument("--benchmark", default="tic-datacomp",
                    help="shipped definition (tic-datacomp, tic-yfcc, tic-redcaps, demo) or a .toml path (default tic-datacomp)")
    cp.add_argument("--granularity", choices=["year", "month"], help="bucket by year (default) or by month within each step")
    cp.add_argument("--column", action="append", metavar="CANON=NAME",
                    help="read a canonical column (uid, url, text, source, snapshot, crawl_time, dateuploaded, created_utc) "
                    "from another column name, e.g. --column text=caption; repeatable")
    cp.add_argument("--format", choices=["parquet", "warc", "yfcc", "redcaps"], help="input format (default: detected per file)")
    cp.add_argument("--collinfo", metavar="PATH", help="CommonCrawl's collinfo.json (default: the shipped copy, 118 crawls to CC-MAIN-2025-47)")
    cp.add_argument("--partitions", type=_positive, metavar="N", help="uid hash partitions (default: one per --partition-rows input rows)")
    cp.add_argument("--partition-rows", type=_positive, default=1_000_000, metavar="N",
                    help="target rows per partition; bounds the memory of a reduce task (default 1,000,000)")
    cp.add_argument("--chunk-rows", type=_positive, default=1_000_000, metavar="N",
                    help="rows per map task for Parquet inputs (whole row groups; default 1,000,000)")
    cp.add_argument("--shuffle-compression", choices=["auto", "uncompressed", "lz4", "zstd"], default="auto",
                    help="compression of the intermediate partition files: uncompressed is fastest and needs about 300 bytes "
                    "a row of free disk, lz4 about half that, zstd a quarter; auto (default) is uncompressed while they fit "
                    "in a quarter of this machine's memory, else lz4")
    cp.add_argument("--overwrite", action="store_true", help="replace a curation of other inputs or parameters in OUT (a finished one of the same inputs is kept)")
    cp.add_argument("--keep-work", action="store_true", help="keep the intermediate files and task markers after success")
    cp.add_argument("--work-dir", metavar="DIR",
                    help="where the intermediate partition files go (default OUT/.tic/work), e.g. a fast local disk; "
                    "on a cluster it must be visible to every node. Completion markers stay in OUT/.tic")
    _add_executor_flags(cp)
    cp.set_defaults(func=cmd_curate)

    up = sub.add_parser("uids", help="import and export uid lists in DataComp's format (.npy, u8,u8, sorted)",
                        description="Convert between curated buckets and DataComp/TiC uid files.")
    up_sub = up.add_subparsers(dest="what", metavar="WHAT", required=True)
    ue = up_sub.add_parser("export", parents=[common], help="one .npy uid file per bucket of a curated folder",
                           description="Write OUT/<bucket>.npy (numpy `u8,u8`, sorted) for every bucket of DIR's manifest.")
    ue.add_argument("dir", help="a curated folder (holds manifest.json)")
    ue.add_argument("--out", required=True, help="folder for the .npy files")
    ue.add_argument("--split", default="train", help="rows of this split only, or 'all' (default train)")
    ue.set_defaults(func=cmd_uids_export)
    ui = up_sub.add_parser("import", parents=[common], help="restrict a curated folder to the uids of given files",
                           description="Keep the rows of DIR whose uid is in one of the uid files; each file names a "
                           "bucket (BUCKET=FILE.npy, or FILE.npy whose stem is the bucket), written as a `bucket` column "
                           "to a new curated folder OUT. Listed uids absent from DIR are counted.")
    ui.add_argument("dir", help="a curated folder (holds manifest.json)")
    ui.add_argument("uid_files", nargs="+", metavar="[BUCKET=]FILE.npy")
    ui.add_argument("--out", required=True, help="new curated folder")
    ui.add_argument("--overwrite", action="store_true", help="replace a manifest in OUT")
    ui.set_defaults(func=cmd_uids_import)

    dp = sub.add_parser(
        "download", parents=[common], help="fetch every bucket's images into webdataset shards (img2dataset)",
        description="Fetch the images of a curated folder with img2dataset into DIR/shards/<bucket>/NNNNNNNN.tar "
        "(key = uid; .jpg, .txt, .json) with sizes.json per bucket, and merge a status for every row (status, "
        "error_message, sha256, width, height, shard, key, exif_datetime_original, last_modified) into the manifest. "
        "One run is one round: it finishes an interrupted round (finished shards are skipped), else fetches the rows "
        "that have no status yet or are not a success (failed or refused).")
    dp.add_argument("dir", help="a curated folder (holds manifest.json)")
    dp.add_argument("--buckets", metavar="A,B", help="only these buckets (default: all)")
    dp.add_argument("--allow-private-hosts", action="store_true",
                    help="fetch from private and loopback addresses (refused by default; tests and the demo need it)")
    dp.add_argument("--image-size", type=_positive, default=512, help="resize target in pixels (default 512, DataComp's)")
    dp.add_argument("--resize-mode", default="keep_ratio_largest",
                    choices=["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"],
                    help="img2dataset resize mode (default keep_ratio_largest, DataComp's)")
    dp.add_argument("--resize-always", action="store_true", help="also upscale images smaller than --image-size")
    dp.add_argument("--encode-quality", type=_positive, default=95, help="JPEG quality of re-encoded images (default 95)")
    dp.add_argument("--samples-per-shard", type=_positive, default=10_000, help="rows per shard (default 10,000)")
    dp.add_argument("--threads", type=_positive, default=64, help="download threads per shard task (default 64)")
    dp.add_argument("--timeout", type=float, default=10.0, help="seconds before a connection or read gives up (default 10)")
    dp.add_argument("--retries", type=int, default=0, help="immediate retries of a failed fetch within the run (default 0)")
    dp.add_argument("--max-bytes", type=_positive, default=20 * 1024 * 1024, help="refuse larger responses (default 20 MiB)")
    dp.add_argument("--max-pixels", type=_positive, default=40_000_000,
                    help="refuse images with more pixels, read from the header before decoding (default 40,000,000)")
    dp.add_argument("--user-agent-token", help="a token appended to the User-Agent (and matched in X-Robots-Tag)")
    _add_executor_flags(dp)
    dp.set_defaults(func=cmd_download)

    rp = sub.add_parser(
        "reshard", parents=[common], help="per-bucket shards from an existing DataComp-style webdataset pool",
        description="Stream an existing webdataset pool (tars whose .json holds the uid, as DataComp's and img2dataset's) "
        "into OUT/shards/<bucket>/NNNNNNNN.tar (key = uid, every member kept, deterministic bytes) with sizes.json, "
        "selecting each bucket's samples by a curated folder (--manifest) or by DataComp/TiC uid files (--uids). "
        "Parallel on Ray, memory bounded (about 18 bytes per selected uid in the driver), resumable; OUT/reshard.json "
        "holds the counts and a ledger (read = selected + not selected + duplicates + malformed).")
    rp.add_argument("shards", nargs="+", metavar="SHARDS", help="tar files, folders of tars, globs or brace patterns (pool/{00000000..00000099}.tar)")
    rp.add_argument("--out", required=True, help="output folder")
    rp.add_argument("--manifest", metavar="DIR", help="a curated folder: each bucket takes the rows of its years")
    rp.add_argument("--uids", nargs="+", action="extend", metavar="[BUCKET=]FILE.npy",
                    help="DataComp uid files (numpy u8,u8), one per bucket; the file's stem names the bucket unless BUCKET= is given")
    rp.add_argument("--split", default="train", help="with --manifest: rows of this split only, or 'all' (default train)")
    rp.add_argument("--samples-per-shard", type=_positive, default=10_000, help="samples per output shard (default 10,000)")
    rp.add_argument("--tars-per-task", type=_positive, default=1, help="input tars per task (default 1)")
    rp.add_argument("--overwrite", action="store_true", help="replace another reshard's output in OUT")
    _add_executor_flags(rp)
    rp.set_defaults(func=cmd_reshard)

    ep = sub.add_parser(
        "evalsets", parents=[common], help="held-out retrieval and classification sets per bucket; decontaminated training shards",
        description="Per bucket of a downloaded folder: hold out a retrieval set (informative, unique captions) and a "
        "DataCompNet-style classification set (captions naming exactly one class, whole words; a per-class cap), seeded. "
        "Training rows in any bucket whose image equals an eval image (sha256), nearly equals it (pHash), or whose "
        "(url, text) equals an eval pair are excluded and counted. Writes DIR/eval/<bucket>/{retrieval,classification}/ "
        "in CLIP_benchmark's wds layout (clip_benchmark eval --dataset wds/NAME --dataset_root THAT_FOLDER) with "
        "samples.parquet, sets the manifest's split column (train, retrieval, classification, excluded), and reshards "
        "the training rows into DIR/train/shards/<bucket>/.")
    ep.add_argument("dir", help="a curated folder whose images are in DIR/shards (tic download or tic reshard --out DIR)")
    ep.add_argument("--classes", default="auto", metavar="SPEC",
                    help="imagenet (1000 classes, with synonyms), column:NAME (a manifest column's values), a vocabulary "
                    "file (JSON or one 'name, synonym, ...' per line), or auto: column:concept when the manifest has it "
                    "(the synthetic world), else imagenet (default auto)")
    ep.add_argument("--seed", type=int, default=0, help="selection seed (default 0)")
    ep.add_argument("--retrieval", type=int, metavar="N", help="retrieval pairs per bucket (default: the benchmark's retrieval_per_step)")
    ep.add_argument("--per-class", type=int, metavar="N", help="classification images per class and bucket (default: the benchmark's classification_per_class)")
    ep.add_argument("--phash-distance", type=int, default=4, metavar="BITS",
                    help="a training image within this many pHash bits of an eval image is a near duplicate (default 4 of 64)")
    ep.add_argument("--min-words", type=int, default=3, help="retrieval captions have at least this many words (default 3)")
    ep.add_argument("--max-words", type=int, default=60, help="and at most this many (default 60)")
    ep.add_argument("--tic-retrieval", metavar="PKL", help="import TiC's tic-datacomp_retrieval_evals_year2uids.pkl instead of selecting retrieval sets")
    ep.add_argument("--tic-datacompnet", metavar="PKL", help="import TiC's tic-datacompnet_year2uids.pkl instead of selecting classification sets (needs --classes imagenet)")
    ep.add_argument("--samples-per-shard", type=_positive, default=10_000, help="samples per eval and training tar (default 10,000)")
    ep.add_argument("--no-train-shards", action="store_true", help="do not reshard the training rows into DIR/train/shards")
    ep.add_argument("--overwrite", action="store_true", help="rebuild eval sets made with other parameters")
    _add_executor_flags(ep)
    ep.set_defaults(func=cmd_evalsets)

    tp = sub.add_parser(
        "train", parents=[common], help="train a continual method over a benchmark's steps (open_clip models)",
        description="Train every step of the benchmark of DATA (a folder after tic evalsets: DATA/train/shards) with one "
        "continual method under a fixed budget of samples per step; one checkpoint per step in OUT/checkpoints/ "
        "(safetensors + open_clip_config.json), OUT/log.jsonl, OUT/run.json. A killed run resumes where it stopped. "
        "Methods: sequential, cumulative-all, cumulative-exp, cumulative-equal, restart, oracle, lwf, patching "
        "(definitions: README and train/mixture.py). Several processes: torchrun --nproc-per-node N -m ticdata.cli train ...")
    tp.add_argument("--config", metavar="RUN.toml", help="a TOML run config; flags override it")
    tp.add_argument("--data", help="a folder after tic evalsets")
    tp.add_argument("--out", help="the run folder")
    tp.add_argument("--method", help="the continual method (default sequential)")
    tp.add_argument("--samples-per-step", type=int, help="the budget C in samples seen per step (default: the benchmark's)")
    tp.add_argument("--batch-size", type=int, help="global batch size (default 256)")
    tp.add_argument("--model", help="an open_clip architecture or a shipped tiny config (default tic-tiny)")
    tp.add_argument("--lr", type=float, help="peak learning rate (default 5e-4)")
    tp.add_argument("--warmup", type=int, help="warmup optimizer steps (default 50)")
    tp.add_argument("--weight-decay", type=float, help="AdamW weight decay on weight matrices (default 0.2)")
    tp.add_argument("--precision", help="fp32 or bf16 (autocast) (default fp32)")
    tp.add_argument("--seed", type=int, help="seed of the initialisation, the draws and the augmentations (default 0)")
    tp.add_argument("--workers", type=int, help="data loader processes (default 2)")
    tp.add_argument("--device", help="auto, cpu or cuda (default auto)")
    tp.add_argument("--accum-freq", type=int, help="micro-batches per optimizer step (gradient accumulation, default 1)")
    tp.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in the backward pass")
    tp.add_argument("--buffer", type=int, help="replay buffer size of cumulative-exp/-equal (default |D_t|)")
    tp.add_argument("--lwf-weight", type=float, help="LwF distillation weight (default 1)")
    tp.add_argument("--lwf-data", help="LwF's data: sequential or a cumulative method (default cumulative-all)")
    tp.add_argument("--patching-alpha", type=float, help="Patching: weight of the fine-tuned model (default 0.5)")
    tp.add_argument("--checkpoint-every", type=int, help="optimizer steps between resume checkpoints (default: every 5 minutes)")
    tp.add_argument("--log-every", type=int, help="optimizer steps per log line (default 10)")
    tp.add_argument("--threads", type=int, help="torch threads (default torch's)")
    tp.add_argument("--steps", help="only these benchmark steps, comma-separated")
    tp.add_argument("--deterministic", action="store_true", help="deterministic kernels (reproducible resumes)")
    tp.add_argument("--set", action="append", metavar="KEY=VALUE", help="set any config key")
    tp.set_defaults(func=cmd_train)

    vp = sub.add_parser(
        "eval", parents=[common], help="score every checkpoint of runs on every bucket's held-out sets (and static sets)",
        description="For each checkpoint of each RUN and each bucket's held-out sets (DATA/eval/<bucket>/...): "
        "text-to-image and image-to-text recall@1/5/10, zero-shot top-1/top-5/mean per-class recall; plus static "
        "CLIP_benchmark wds sets. Cells are cached: a rerun computes only what is missing. Writes RUN/eval/matrix.json "
        "(E[i][j] per task, in-domain / backward / forward transfer) and CLIP_benchmark-shaped JSON per cell.")
    vp.add_argument("runs", nargs="+", metavar="RUN", help="run folders of tic train")
    vp.add_argument("--static", action="append", metavar="NAME=FOLDER", help="a static eval set in CLIP_benchmark's wds layout (repeatable)")
    vp.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    vp.add_argument("--batch-size", type=int, default=256, help="images or texts per forward pass (default 256)")
    vp.set_defaults(func=cmd_eval)

    rpp = sub.add_parser(
        "report", parents=[common], help="Markdown and HTML report with figures from evaluated runs",
        description="From each RUN's eval/matrix.json (tic eval): eval-matrix heatmaps per method, in-domain performance "
        "per step, compute (samples, MACs) against the average dynamic and static score, and the metrics table "
        "(in-domain, backward, forward transfer) in OUT/report.md and OUT/report.html with PNG figures.")
    rpp.add_argument("runs", nargs="+", metavar="RUN", help="evaluated run folders, one per method")
    rpp.add_argument("--out", required=True, help="report folder")
    rpp.set_defaults(func=cmd_report)

    dm = sub.add_parser(
        "demo", parents=[common], help="the whole pipeline on the synthetic world, ending with the report",
        description="The main job on the embedded default: synthetic drifting world -> served on 127.0.0.1 -> curated into "
        "the demo benchmark -> downloaded -> eval sets -> each method trained (tiny open_clip model, CPU) -> eval -> report. "
        "Reruns resume. Prints the metrics table and the report's path.")
    dm.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    dm.add_argument("--methods", help="comma-separated continual methods, or 'all' (default sequential,cumulative-all,oracle)")
    dm.add_argument("--port", type=int, default=8765, help="port of the image server on 127.0.0.1 (default 8765)")
    dm.add_argument("--pairs-per-step", type=int, default=3300, help="world pairs per step (default 3300)")
    dm.set_defaults(func=cmd_demo)

    ap = sub.add_parser(
        "audit", parents=[common], help="how far a curated pool's time buckets can be trusted",
        description="Compare each row's recovered first sighting with independent evidence: dates in its URL, EXIF "
        "DateTimeOriginal and Last-Modified (collected by tic download), and its crawl's window. Writes OUT/audit.json "
        "(coverage, agreement, impossible orders, lag, wrong-bucket share with a 95% interval, domains, crawls) and "
        "OUT/audit.md / audit.html with plots. On Ray, one task per manifest file.")
    ap.add_argument("dir", help="a curated folder (after tic download for EXIF and Last-Modified)")
    ap.add_argument("--out", required=True, help="report folder")
    ap.add_argument("--fix", metavar="DIR3", help="write a corrected manifest there (earliest trustworthy evidence; ts_original kept)")
    ap.add_argument("--fail-if", action="append", metavar="EXPR",
                    help="exit with status 3 when a figure of audit.json crosses it, e.g. 'wrong_bucket.share>0.05' (repeatable)")
    _add_executor_flags(ap)
    ap.set_defaults(func=cmd_audit)

    bp = sub.add_parser("benchmarks", parents=[common], help="list the shipped benchmark definitions",
                        description="The shipped benchmark definitions (manifests/*.toml) and their steps.")
    bp.set_defaults(func=cmd_benchmarks)
    return parser


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[tic] %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.quiet, args.verbose)
    try:
        return args.func(args)
    except UserError as e:
        print(f"tic: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tic: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
