"""`tic` verbs that make and check curated folders: curate, uids, download, reshard, evalsets,
audit. Each verb is a parser (`add_<verb>`) and a command that calls one library function."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from ticdata.errors import UserError
from ticdata.extras import missing_extra
from ticdata.cli_args import add_executor_flags, count, executor, positive, seconds, share

log = logging.getLogger("ticdata")


def cmd_curate(args) -> int:
    from ticdata.columns import ColumnMap
    from ticdata.curate import CurateConfig, curate, finished, make_job, make_plan
    from ticdata.manifest import format_bucket_table
    from ticdata.objstore import location

    config = CurateConfig(
        inputs=tuple(args.inputs),
        out=location(args.out),
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
        work_dir=location(args.work_dir) if args.work_dir else None,
        progress=not args.quiet,
    )
    plan = make_plan(config)  # validates every input before Ray starts or anything is written
    doc = finished(config, plan)
    make_job(config, plan).check()  # refuse a folder holding another curation before Ray starts
    if doc is not None:
        log.info("%s is already curated from these inputs; nothing to do", config.out)
    else:
        with executor(args, work_bytes=sum(f.size for f in plan.inputs), threads=True) as ex:
            doc = curate(config, ex, plan)
    print(format_bucket_table(doc))
    print(f"manifest: {location(args.out).resolve() / 'manifest'}  ({doc['rows']:,} rows)")
    return 0


def cmd_uids_export(args) -> int:
    from ticdata.manifest import checked_manifest_files, manifest_guard
    from ticdata.uidexport import export_uids

    with manifest_guard(args.dir):
        work = sum(p.stat().st_size for p in checked_manifest_files(args.dir))
        with executor(args, work_bytes=work, threads=True) as ex:
            written = export_uids(Path(args.dir), Path(args.out), split=None if args.split == "all" else args.split,
                                  executor=ex, overwrite=args.overwrite, progress=not args.quiet)
    for name, n in written.items():
        print(f"{name:<12} {n:>12,} uids  {Path(args.out) / (name + '.npy')}")
    return 0


def cmd_uids_sizes(args) -> int:
    from ticdata.tic_pickles import format_official_sizes, official_sizes

    for path in args.pickles:
        print(format_official_sizes(Path(path), official_sizes(Path(path))))
    return 0


def cmd_uids_import(args) -> int:
    from ticdata.manifest import format_bucket_table
    from ticdata.uidsplits import format_import_table, import_uids

    from ticdata.manifest import manifest_guard

    from ticdata.manifest import checked_manifest_files

    with manifest_guard(args.dir):
        work = sum(p.stat().st_size for p in checked_manifest_files(args.dir))
        with executor(args, work_bytes=work, threads=True) as ex:
            doc = import_uids(Path(args.dir), args.uid_files, Path(args.out), overwrite=args.overwrite, executor=ex,
                              progress=not args.quiet)
    print(format_bucket_table(doc))
    print(format_import_table(doc))
    print("dated elsewhere: found rows whose first-seen date tic recovered lies outside the list's bucket")
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
    from ticdata.manifest import load_manifest_json, manifest_guard

    load_manifest_json(config.dir)  # a folder that is not a curation is refused before Ray starts
    with manifest_guard(args.dir), executor(args) as ex:
        summary = download(config, ex)
    print(format_summary(summary))
    print(f"shards: {Path(args.dir).resolve() / 'shards'}")
    return 0


def cmd_reshard(args) -> int:
    from ticdata.reshard import format_reshard_table, plan_reshard, reshard

    if args.dating and not args.uids:
        raise UserError("--dating compares official uid lists with tic's dating; give the lists with --uids")
    kw = dict(
        manifest=Path(args.manifest) if args.manifest else None, uid_files=args.uids,
        samples_per_shard=args.samples_per_shard, split=None if args.split == "all" else args.split,
        tars_per_task=args.tars_per_task, overwrite=args.overwrite,
    )
    from ticdata.manifest import manifest_guard

    guard = manifest_guard(args.manifest) if args.manifest else contextlib.nullcontext()
    with guard:
        plan = plan_reshard(args.shards, Path(args.out), **kw)  # validates before Ray starts
        with executor(args) as ex:
            doc = reshard(args.shards, Path(args.out), ex, progress=not args.quiet, plan=plan, **kw)
    print(format_reshard_table(doc))
    print(f"shards: {Path(args.out).resolve() / 'shards'}")
    if args.dating:
        from ticdata.official_dating import dating_of_lists, format_dating
        from ticdata.storage import write_json_atomic

        with manifest_guard(args.dating), executor(args) as ex:
            dating = dating_of_lists(Path(args.dating), args.uids, Path(args.out), ex, progress=not args.quiet)
        write_json_atomic(Path(args.out) / "dating.json", {"curated": str(Path(args.dating).resolve()), "lists": dating})
        print()
        print(format_dating(dating, doc))
        print("dated elsewhere: listed uids whose first-seen date tic recovered lies outside the list's bucket "
              f"({Path(args.out).resolve() / 'dating.json'})")
    return 0


def cmd_evalsets(args) -> int:
    from ticdata.evalsets import EvalConfig, build_evalsets, format_evalsets_table, make_job

    config = EvalConfig(
        dir=Path(args.dir), classes=args.classes, seed=args.seed, retrieval=args.retrieval, per_class=args.per_class,
        retrieval_share=args.retrieval_share,
        distance=args.phash_distance, min_words=args.min_words, max_words=args.max_words,
        tic_retrieval=Path(args.tic_retrieval) if args.tic_retrieval else None,
        tic_datacompnet=Path(args.tic_datacompnet) if args.tic_datacompnet else None,
        caption_model=args.caption_model, caption_pretrained=args.caption_pretrained, caption_threshold=args.caption_threshold,
        samples_per_shard=args.samples_per_shard, train_shards=not args.no_train_shards, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    from ticdata.manifest import manifest_guard

    with manifest_guard(args.dir):
        make_job(config)  # checks the folder and refuses what it may not replace before Ray starts
        scorer_factory = None
        if config.caption_model is not None:  # loaded before anything changes: bad weights are refused first
            try:
                from tic_train.caption_scorer import CaptionScorer
            except ImportError as e:
                raise UserError(f"--caption-model: {missing_extra(e) or e}") from None
            scorer = CaptionScorer(config.caption_model, config.caption_pretrained, args.cache_dir)

            def scorer_factory():
                return scorer

        with executor(args) as ex:
            doc = build_evalsets(config, ex, scorer_factory)
    print(format_evalsets_table(doc))
    print(f"eval sets: {Path(args.dir).resolve() / 'eval'}")
    if config.train_shards:
        print(f"training shards: {Path(args.dir).resolve() / 'train' / 'shards'}")
    return 0


def cmd_audit(args) -> int:
    from ticdata.audit import check_fail_if, headline, make_job, run_audit
    from ticdata.audit_report import write_report

    fix = Path(args.fix) if args.fix else None
    from ticdata.manifest import checked_manifest_files, manifest_guard

    with manifest_guard(args.dir):
        make_job(Path(args.dir), Path(args.out), fix, args.overwrite)  # refuse before Ray starts
        work = sum(p.stat().st_size for p in checked_manifest_files(args.dir))
        with executor(args, work_bytes=work, threads=True) as ex:
            result = run_audit(Path(args.dir), Path(args.out), ex, fix=fix, progress=not args.quiet, overwrite=args.overwrite)
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


def add_curate(sub, common) -> None:
    """tic curate"""
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
    cp.add_argument("--partitions", type=positive, metavar="N", help="uid hash partitions (default: one per --partition-rows input rows)")
    cp.add_argument("--partition-rows", type=positive, default=1_000_000, metavar="N",
                    help="target rows per partition; bounds the memory of a reduce task (default 1,000,000)")
    cp.add_argument("--chunk-rows", type=positive, default=1_000_000, metavar="N",
                    help="rows per map task for Parquet inputs (whole row groups; default 1,000,000)")
    cp.add_argument("--shuffle-compression", choices=["auto", "uncompressed", "lz4", "zstd"], default="auto",
                    help="compression of the intermediate partition files: uncompressed is fastest and needs about 300 bytes "
                    "a row of free disk, lz4 about half that, zstd a quarter; auto (default) is uncompressed while they fit "
                    "in a quarter of this machine's memory, else lz4")
    cp.add_argument("--overwrite", action="store_true", help="replace a curation of other inputs or parameters in OUT (a finished one of the same inputs is kept)")
    cp.add_argument("--keep-work", action="store_true", help="keep the intermediate files and task markers after success")
    cp.add_argument("--work-dir", metavar="DIR",
                    help="where the intermediate partition files go (default OUT/.tic/curate/work), e.g. a fast local disk; "
                    "on a cluster it must be visible to every node. Completion markers stay in OUT/.tic/curate")
    add_executor_flags(cp)
    cp.set_defaults(func=cmd_curate)


def add_uids(sub, common) -> None:
    """tic uids export / import"""
    up = sub.add_parser("uids", help="import and export uid lists in DataComp's format (.npy, u8,u8, sorted)",
                        description="Convert between curated buckets and DataComp/TiC uid files.")
    up_sub = up.add_subparsers(dest="what", metavar="WHAT", required=True)
    ue = up_sub.add_parser("export", parents=[common], help="one .npy uid file per bucket of a curated folder",
                           description="Write OUT/<bucket>.npy (numpy `u8,u8`, sorted) for every bucket of DIR's manifest.")
    ue.add_argument("dir", help="a curated folder (holds manifest.json)")
    ue.add_argument("--out", required=True, help="folder for the .npy files")
    ue.add_argument("--split", default="train", help="rows of this split only, or 'all' (default train)")
    ue.add_argument("--overwrite", action="store_true", help="replace the uid files of another export in --out")
    add_executor_flags(ue)
    ue.set_defaults(func=cmd_uids_export)
    ui = up_sub.add_parser("import", parents=[common], help="restrict a curated folder to the uids of given files",
                           description="Keep the rows of DIR whose uid is in one of the uid files; each file names a "
                           "bucket (BUCKET=FILE.npy, or FILE.npy whose stem is the bucket), written as a `bucket` column "
                           "to a new curated folder OUT. Listed uids absent from DIR are counted.")
    ui.add_argument("dir", help="a curated folder (holds manifest.json)")
    ui.add_argument("uid_files", nargs="+", metavar="[BUCKET=]FILE.npy")
    ui.add_argument("--out", required=True, help="new curated folder")
    ui.add_argument("--overwrite", action="store_true", help="replace a manifest in OUT")
    add_executor_flags(ui)
    ui.set_defaults(func=cmd_uids_import)
    us = up_sub.add_parser("sizes", parents=[common], help="per-year sizes of TiC's official eval uid maps (.pkl)",
                           description="Print, per year, how many uids an official TiC eval map lists "
                           "(tic-datacomp_retrieval_evals_year2uids.pkl) and, for tic-datacompnet_year2uids.pkl, over how "
                           "many classes with the smallest / median / largest class: the paper's eval-set sizes. The "
                           "pickles are read without running anything they contain.")
    us.add_argument("pickles", nargs="+", metavar="FILE.pkl")
    us.set_defaults(func=cmd_uids_sizes)


def add_download(sub, common) -> None:
    """tic download"""
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
    dp.add_argument("--image-size", type=positive, default=512, help="resize target in pixels (default 512, DataComp's)")
    dp.add_argument("--resize-mode", default="keep_ratio_largest",
                    choices=["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"],
                    help="img2dataset resize mode (default keep_ratio_largest, DataComp's)")
    dp.add_argument("--resize-always", action="store_true", help="also upscale images smaller than --image-size")
    dp.add_argument("--encode-quality", type=positive, default=95, help="JPEG quality of re-encoded images (default 95)")
    dp.add_argument("--samples-per-shard", type=positive, default=10_000, help="rows per shard (default 10,000)")
    dp.add_argument("--threads", type=positive, default=64, help="download threads per shard task (default 64)")
    dp.add_argument("--timeout", type=seconds, default=10.0, help="seconds before a connection or read gives up (default 10)")
    dp.add_argument("--retries", type=count, default=0, help="immediate retries of a failed fetch within the run (default 0)")
    dp.add_argument("--max-bytes", type=positive, default=20 * 1024 * 1024, help="refuse larger responses (default 20 MiB)")
    dp.add_argument("--max-pixels", type=positive, default=40_000_000,
                    help="refuse images with more pixels, read from the header before decoding (default 40,000,000)")
    dp.add_argument("--user-agent-token", help="a token appended to the User-Agent (and matched in X-Robots-Tag)")
    add_executor_flags(dp)
    dp.set_defaults(func=cmd_download)


def add_reshard(sub, common) -> None:
    """tic reshard"""
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
    rp.add_argument("--dating", metavar="DIR", help="with --uids: a curated folder of the same pool; prints, per list, "
                    "how many listed uids tic dates outside the list's year (written to OUT/dating.json)")
    rp.add_argument("--split", default="train", help="with --manifest: rows of this split only, or 'all' (default train)")
    rp.add_argument("--samples-per-shard", type=positive, default=10_000, help="samples per output shard (default 10,000)")
    rp.add_argument("--tars-per-task", type=positive, default=1, help="input tars per task (default 1)")
    rp.add_argument("--overwrite", action="store_true", help="replace another reshard's output in OUT")
    add_executor_flags(rp)
    rp.set_defaults(func=cmd_reshard)


def add_evalsets(sub, common) -> None:
    """tic evalsets"""
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
    ep.add_argument("--seed", type=count, default=0, help="selection seed (default 0)")
    ep.add_argument("--retrieval", type=count, metavar="N", help="retrieval pairs per bucket (default: the benchmark's retrieval_per_step)")
    ep.add_argument("--retrieval-share", type=share, metavar="F", help="instead: this share of each bucket's images, a "
                    "seeded random sample (TiC-YFCC and TiC-RedCaps hold out 1%%: their benchmarks set 0.01)")
    ep.add_argument("--per-class", type=count, metavar="N", help="classification images per class and bucket (default: the benchmark's classification_per_class)")
    ep.add_argument("--phash-distance", type=count, default=4, metavar="BITS",
                    help="a training image within this many pHash bits of an eval image is a near duplicate (default 4 of 64)")
    ep.add_argument("--min-words", type=count, default=3, help="retrieval captions have at least this many words (default 3)")
    ep.add_argument("--max-words", type=positive, default=60, help="and at most this many (default 60)")
    ep.add_argument("--tic-retrieval", metavar="PKL", help="import TiC's tic-datacomp_retrieval_evals_year2uids.pkl instead of selecting retrieval sets")
    ep.add_argument("--tic-datacompnet", metavar="PKL", help="import TiC's tic-datacompnet_year2uids.pkl instead of selecting classification sets (needs --classes imagenet)")
    ep.add_argument("--caption-model", metavar="ARCH", help="DataCompNet's caption filter (TiC-CLIP, after LAIONet): keep a "
                    "class-naming caption only if this open_clip model's text embedding of it is close to its class's text "
                    "(needs tic[train]; off by default, and meaningless on the synthetic world)")
    ep.add_argument("--caption-pretrained", metavar="FILE|TAG", help="the filter model's weights: a local file or an "
                    "open_clip tag already in the cache (nothing is downloaded)")
    ep.add_argument("--caption-threshold", type=float, default=0.82, metavar="COS",
                    help="lowest cosine similarity kept (default 0.82, LAIONet's cut for CLIP's text encoder)")
    ep.add_argument("--cache-dir", metavar="DIR", help="open_clip / Hugging Face cache holding --caption-pretrained's weights")
    ep.add_argument("--samples-per-shard", type=positive, default=10_000, help="samples per eval and training tar (default 10,000)")
    ep.add_argument("--no-train-shards", action="store_true", help="do not reshard the training rows into DIR/train/shards")
    ep.add_argument("--overwrite", action="store_true", help="rebuild eval sets made with other parameters")
    add_executor_flags(ep)
    ep.set_defaults(func=cmd_evalsets)


def add_audit(sub, common) -> None:
    """tic audit"""
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
                    help="exit with status 3 when a figure of audit.json crosses it, e.g. 'wrong_bucket.share>0.05' or "
                    "'survival.min<0.5' (the lowest bucket's share of images downloaded; repeatable)")
    ap.add_argument("--overwrite", action="store_true", help="replace an audit (and --fix manifest) of other inputs in OUT (and DIR3)")
    add_executor_flags(ap)
    ap.set_defaults(func=cmd_audit)
