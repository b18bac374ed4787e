"""`tic` verbs for synthetic inputs and listings: synth pool, synth world, serve-images,
benchmarks."""

from __future__ import annotations

from pathlib import Path

from ticdata.cli_args import count, port, positive, seconds, share


def cmd_synth_pool(args) -> int:
    from ticdata.synth.pool import make_pool

    summary = make_pool(
        Path(args.out), rows=args.rows, seed=args.seed, rows_per_file=args.rows_per_file,
        row_group_rows=args.row_group_rows, resight_share=args.resight_share, overwrite=args.overwrite,
        progress=not args.quiet,
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
        link_rot=not args.no_link_rot,
    )
    print(f"wrote the synthetic world to {args.out}: {summary['unique_pairs']:,} pairs, {summary['rows']:,} rows, "
          f"{len(summary['concepts'])} concepts, images at {summary['base_url']} (serve them with `tic serve-images`)")
    return 0


def cmd_serve_images(args) -> int:
    from ticdata.serve import serve_forever

    print(f"serving the synthetic world on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve_forever(args.host, args.port, slow_seconds=args.slow_seconds)
    return 0


def cmd_benchmarks(args) -> int:
    from ticdata.benchmarks import load_benchmark, shipped_names

    for name in args.definitions or shipped_names():
        b = load_benchmark(name)  # a file given by path is checked: one line naming it and the key
        steps = ", ".join(s.name for s in b.steps)
        print(f"{b.name:<14} {steps} ({b.granularity})\n{'':<14} {b.description}")
    return 0


def add_synth(sub, common) -> None:
    """tic synth pool / world"""
    synth = sub.add_parser("synth", help="synthetic data for demos, tests and benchmarks",
                           description="Generate synthetic inputs that need no internet.")
    synth_sub = synth.add_subparsers(dest="what", metavar="WHAT", required=True)
    sp = synth_sub.add_parser("pool", parents=[common], help="a CommonCrawl-style pool in DataComp's Parquet layout",
                              description="A CommonCrawl-style pool (uid, url, text, source, crawl_time, ...) with "
                              "re-sightings of a uid across snapshots and files and bad rows at known rates; "
                              "the planted counts are written to OUT/_synth.json.")
    sp.add_argument("--rows", type=positive, required=True, help="number of rows to write")
    sp.add_argument("--out", required=True, help="output folder (pool-NNNNN.parquet, _synth.json)")
    sp.add_argument("--seed", type=count, default=0, help="random seed; equal seeds give equal bytes (default 0)")
    sp.add_argument("--rows-per-file", type=positive, default=1_000_000, help="rows per Parquet file (default 1,000,000)")
    sp.add_argument("--row-group-rows", type=positive, default=131_072, help="rows per Parquet row group (default 131,072)")
    sp.add_argument("--resight-share", type=share, default=0.25, metavar="F", help="share of rows that re-sight an "
                    "earlier pair (default 0.25: 1.33 sightings per uid; 0.75: 4)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing pool in OUT")
    sp.set_defaults(func=cmd_synth_pool)

    sw = synth_sub.add_parser(
        "world", parents=[common], help="a drifting synthetic image-text world (2014-2022) and its pool",
        description="A deterministic world of image-text pairs for 2014-2022 whose concepts change look (shape, texture, "
        "hue) at every step of the demo benchmark, some appearing late and one fading out; writes OUT/world-*.parquet "
        "(a CommonCrawl-style pool with re-sightings, for `tic curate --benchmark demo`) and OUT/_world.json. The "
        "images are rendered on request by `tic serve-images`.")
    sw.add_argument("--out", required=True, help="output folder")
    sw.add_argument("--seed", type=count, default=0, help="world seed; equal seeds give equal bytes (default 0)")
    sw.add_argument("--base-url", default="http://127.0.0.1:8765",
                    help="where `tic serve-images` will listen (default http://127.0.0.1:8765)")
    sw.add_argument("--pairs-per-step", type=positive, default=3300, help="unique pairs per demo step (default 3,300)")
    sw.add_argument("--image-size", type=positive, default=64, help="image side in pixels (default 64)")
    sw.add_argument("--fail-share", type=share, default=0.02,
                    help="share of pairs whose URL fails the way the web does: 404, 500, slow, truncated, corrupt, "
                    "redirect, huge, noai (default 0.02)")
    sw.add_argument("--no-link-rot", action="store_true",
                    help="no link rot: by default old pairs lose their image more often than new ones (a 404 for "
                    "35%% of 2014's pairs down to 11%% of 2022's, after Pew Research's 2024 study of Common Crawl pages)")
    sw.add_argument("--overwrite", action="store_true", help="replace a world in OUT")
    sw.set_defaults(func=cmd_synth_world)


def add_serve_images(sub, common) -> None:
    """tic serve-images"""
    si = sub.add_parser(
        "serve-images", parents=[common], help="serve the synthetic world's images over HTTP",
        description="An HTTP server that renders each synthetic pair's JPEG from its URL (/img/...), with Last-Modified "
        "and, for some, EXIF DateTimeOriginal; /fail/<kind>/... fails on purpose: 404, 500, slow, truncated, corrupt, "
        "redirect, huge (a decompression bomb), noai (X-Robots-Tag). Binds only to --host.")
    si.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    si.add_argument("--port", type=port, default=8765, help="port (default 8765, the world's default base URL)")
    si.add_argument("--slow-seconds", type=seconds, default=5.0, help="delay of the /fail/slow/ route (default 5)")
    si.set_defaults(func=cmd_serve_images)


def add_benchmarks(sub, common) -> None:
    """tic benchmarks"""
    bp = sub.add_parser("benchmarks", parents=[common], help="list the shipped benchmark definitions",
                        description="The shipped benchmark definitions (benchmarks/*.toml) and their steps; given names or "
                        "TOML files, shows those, after checking them as `tic curate --benchmark` would.")
    bp.add_argument("definitions", nargs="*", metavar="NAME|FILE.toml",
                    help="show (and check) these definitions instead of listing the shipped ones")
    bp.set_defaults(func=cmd_benchmarks)
