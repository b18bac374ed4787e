"""The audit's Markdown/HTML report and its plots: rows per year and month by signal, the agreement
heatmaps (recovered year x each signal's year, one colour scale 0..1 with a labelled colour bar), the
lag histogram. Every table is a Markdown pipe table after a blank line (ticdata.htmlreport.table);
cells taken from the input (domains, crawls, buckets, list names) go through htmlreport.cell."""

from __future__ import annotations

from pathlib import Path

from ticdata.audit_signals import SIGNALS
from ticdata.htmlreport import cell, markdown_to_html, table
from ticdata.storage import save_figure_atomic, write_text_atomic

SIGNAL_LABELS = {"recovered": "recovered (first sighting)", "url": "date in the URL", "exif": "EXIF DateTimeOriginal",
                 "last_modified": "HTTP Last-Modified", "snapshot": "start of the first crawl"}
AGREEMENT_BAR = "share of the recovered year's rows"


def agreement_figure(result: dict):
    """The agreement heatmaps (a matplotlib Figure, not saved), or None when no signal dates any row:
    per signal, each recovered year's rows spread over the signal's years, one shared 0..1 colour bar."""
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [s for s in SIGNALS[1:] if result["agreement"][s]["rows"]]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown) + 1.2, 4.6), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, shown):
        mat = result["agreement"][s]["matrix"]
        ry = sorted({int(y) for y in mat})
        sy = sorted({int(y) for r in mat.values() for y in r})
        M = np.array([[mat.get(str(a), {}).get(str(b), 0) for b in sy] for a in ry], dtype=float)
        share = M / np.maximum(M.sum(1, keepdims=True), 1)
        im = ax.imshow(share, cmap="magma", vmin=0, vmax=1)
        ax.set_xticks(range(len(sy)), sy, rotation=60, fontsize=7)
        ax.set_yticks(range(len(ry)), ry, fontsize=7)
        ax.set_xlabel(f"year by {SIGNAL_LABELS[s]}")
        ax.set_ylabel("recovered year (first sighting)")
        same = result["agreement"][s]["same_year"]
        ax.set_title(f"{SIGNAL_LABELS[s]}: {same:.0%} same year" if same is not None else SIGNAL_LABELS[s], fontsize=10)
    fig.colorbar(im, ax=list(axes), fraction=0.03, label=AGREEMENT_BAR)
    fig.suptitle("agreement: each recovered year's rows by the signal's year", fontsize=10)
    return fig


def _plots(result: dict, out: Path) -> list[tuple[str, str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    # rows per month by signal
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for s in SIGNALS:
        pts = result["rows_by_month"][s]
        if pts:
            xs = [y + (m - 0.5) / 12 for y, m, _ in pts]
            style = {"recovered": dict(lw=3, alpha=0.5), "snapshot": dict(lw=1, ls="--")}.get(s, dict(lw=1))
            ax.plot(xs, [n for _, _, n in pts], marker=".", label=f"{SIGNAL_LABELS[s]} ({result['coverage'][s]['share']:.0%} of rows)", **style)
    ax.set_xlabel("year (one point per month)")
    ax.set_ylabel("rows")
    ax.set_title("rows per month, by the signal that dates them")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, out / "rows-by-month.png", dpi=110)
    plt.close(fig)
    figs.append(("Rows per month by signal", "rows-by-month.png",
                 "x axis: the month a signal dates the row in; y axis: rows dated in that month, one line per signal."))
    # agreement heatmaps
    fig = agreement_figure(result)
    if fig is not None:
        save_figure_atomic(fig, out / "agreement.png", dpi=110)
        plt.close(fig)
        figs.append(("Agreement between the recovered year and each signal", "agreement.png",
                     "Rows: the recovered year (first sighting); columns: the year the signal gives; colour: the share of "
                     "the recovered year's rows (each row of a panel sums to 1, the colour bar from 0 to 1)."))
    # lag histogram
    lag = result["lag_days"]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.bar(range(len(lag["bins"])), lag["counts"], color="#4477aa")
    ax.set_xticks(range(len(lag["bins"])), lag["bins"], rotation=35, ha="right", fontsize=8)
    ax.set_xlabel("first seen minus earliest trustworthy evidence (days)")
    ax.set_ylabel("rows")
    ax.set_title("lag between first sighting and earlier evidence")
    fig.tight_layout()
    save_figure_atomic(fig, out / "lag.png", dpi=110)
    plt.close(fig)
    figs.append(("Lag histogram", "lag.png", "x axis: days from the earliest trustworthy evidence (URL date, EXIF) to "
                 "the first sighting, in bins; y axis: rows."))
    return figs


def _section(title: str, intro: list[str], head: list[str], rows: list[list], none: str) -> list[str]:
    """A titled table (a blank line before it), or the sentence `none` when it has no rows."""
    return ["", f"## {title}", ""] + intro + (["", *table(head, rows)] if rows else [none])


def write_report(result: dict, out: Path) -> Path:
    out = Path(out)
    try:
        figs, no_figures = _plots(result, out), []
    except ImportError as e:  # the base install: the tables without the figures, and what to install
        from ticdata.extras import missing_extra

        if missing_extra(e) is None:
            raise
        figs, no_figures = [], [f"Figures: not drawn; {missing_extra(e)}.", ""]
    w = result["wrong_bucket"]
    pct = lambda x: "-" if x is None else f"{x:.2%}"  # noqa: E731
    md = ["# tic audit", "", f"Input: `{result['inputs']['dir']}` ({result['rows']:,} rows, benchmark {cell(result['inputs']['benchmark'])}).", "",
          "## Headline", "",
          f"- Wrong bucket: **{pct(w['share'])}** of {w['with_evidence']:,} rows with trustworthy evidence "
          f"(95% {w['interval']} interval {pct(w['ci95'][0])} to {pct(w['ci95'][1])}). Rule: {w['rule']}. Scope: {w['scope']}.",
          f"- Impossible order: {result['impossible_order']['rows']:,} rows first seen before the date in their URL "
          f"({pct(result['impossible_order']['share_of_url_dated'])} of URL-dated rows).", ""]
    coverage = []
    for s in SIGNALS:
        c = result["coverage"][s]
        same = result["agreement"].get(s, {}).get("same_year") if s != "recovered" else 1.0
        coverage.append([s, f"{c['rows']:,}", pct(c["share"]), pct(same)])
    md += ["## Coverage and agreement", "", *table(["signal", "rows", "share", "same year as recovered"], coverage), "",
           "Signals: recovered (first sighting), url (date in the URL path), exif (DateTimeOriginal), last_modified "
           "(HTTP header; weak, reported only), snapshot (start of the first crawl that saw the row).", ""]
    md += no_figures
    for title, name, caption in figs:
        md += [f"## {title}", "", f"![{title}]({name})", "", f"**Figure.** {caption}", ""]
    md += _section("Domains with the most disagreement", [], ["domain", "rows", "with evidence", "wrong bucket", "impossible order"],
                   [[cell(d["domain"]), f"{d['rows']:,}", f"{d['with_evidence']:,}", f"{d['wrong']:,}", f"{d['impossible']:,}"]
                    for d in result["domains"][:20]], "No domain has rows with trustworthy evidence of another bucket.")
    md += _section("Bucket moves (recovered bucket -> bucket of the earliest evidence)", [], ["from", "to", "rows"],
                   [[cell(m["from"]), cell(m["to"]), f"{m['rows']:,}"] for m in result["bucket_moves"][:20]],
                   "No row moves: the earliest evidence of every row lies in its recovered bucket.")
    md += _section("Crawls and bucket sizes", ["Rows first seen in each crawl and that crawl's share of its bucket: a bucket "
                                               "made mostly of one large crawl inherits that crawl's sampling."],
                   ["crawl", "bucket", "rows", "share of bucket"],
                   [[cell(c["crawl"]), cell(c["bucket"]), f"{c['rows']:,}", pct(c["share_of_bucket"])] for c in result["crawls"]],
                   "No row was first seen in a known crawl.")
    if "fix" in result:
        f = result["fix"]
        md += ["", "## Corrected manifest", "", f"`{f['out']}`: {f['rows_moved']:,} rows moved. Rule: {f['rule']}."]
    md += _survival_section(result.get("survival") or {})
    md += _official_section(result.get("official") or {})
    write_text_atomic(out / "audit.md", "\n".join(md) + "\n")
    write_text_atomic(out / "audit.html", markdown_to_html(md, "tic audit"))
    return out / "audit.md"


def _survival_section(surv: dict) -> list[str]:
    """Link rot: what the download got of each bucket, by first-seen year."""
    if not surv.get("buckets"):
        return []
    rows = []
    for name, b in surv["buckets"].items():
        for label, r in [(name, b)] + [(f"{name}: {y}", v) for y, v in b["years"].items() if len(b["years"]) > 1]:
            rate = "-" if r["survival"] is None else f"{r['survival']:.1%} [{r['low']:.1%}, {r['high']:.1%}]"
            rows.append([label, f"{r['attempted']:,}", f"{r['survived']:,}", rate,
                         ", ".join(f"{s} {n:,}" for s, n in b.get("lost", {}).items()) if label == name else ""])
    return ["", "## Survival (link rot)", "",
            "Successes over attempted rows of each bucket (and first-seen year), with the 95% Wilson interval: "
            "the web loses old images more often than new ones, so a regenerated bucket is smaller than the published one, "
            "and its survivors lean toward long-lived sites.", "",
            *table(["bucket", "attempted", "survived", "survival [95% interval]", "lost"], rows), *_domains_table(surv)]


def _domains_table(surv: dict) -> list[str]:
    """Per bucket, its largest domains' share of attempted rows against their share of survivors."""
    pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
    rows = [[name, str(len(d["top"])), pct(d["attempted_share"]), pct(d["survivor_share"]),
             ", ".join(f"{r['domain']} {pct(r['survival'])} of {r['attempted']:,}" for r in d["top"][:3])]
            for name, b in surv["buckets"].items() if (d := b.get("domains"))]
    if not rows:
        return []
    return ["", "Where the survivors come from: the domains that contributed most attempted rows to each bucket, their "
            "share of its attempted rows and of its survivors (a survivor share above the attempted share: the bucket now "
            "leans more on those sites), and the largest three with their survival.", "",
            *table(["domains of bucket", "top domains", "share of attempted", "share of survivors", "largest (survival of attempted)"], rows)]


def _official_section(official: dict) -> list[str]:
    """Agreement with imported official lists and eval maps: a timestamp-quality figure of either side."""
    if not official:
        return []
    md = ["", "## Official lists against tic's dating", ""]
    if "uid_lists" in official:
        rows = []
        for name, v in official["uid_lists"].items():
            found = v.get("matched") or 0
            share = f" ({(v.get('dated_elsewhere') or 0) / found:.1%})" if found else ""
            rows.append([cell(name), f"{v.get('uids') or 0:,}", f"{found:,}", f"{v.get('missing') or 0:,}",
                         f"{v.get('dated_elsewhere') or 0:,}{share}"])
        md += ["Rows of each official list (tic uids import) whose first-seen date tic recovered lies outside the list's bucket.", "",
               *table(["list", "listed", "found", "missing", "dated elsewhere"], rows)]
    if "eval_maps" in official:
        em = official["eval_maps"]
        pairs = [[cell(pair), f"{n:,}"] for pair, n in em["bucket_disagreements"].items()] or [["(none)", "0"]]
        md += ["", f"Official eval uids placed by the map's year: {em.get('placed_by_official_year') or 0:,}; where tic dates "
               "them in another bucket (official -> tic):", "", *table(["official -> tic", "uids"], pairs)]
    return md
