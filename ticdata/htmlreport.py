"""Markdown to HTML for tic's reports (tic report, tic audit), by the `markdown` library (its `tables`
and `fenced_code` extensions).

The page is self-contained: one file, its CSS inline, no script, no font or stylesheet fetched; the
figures are PNG files beside it, referenced by name as in the Markdown. A report carries text taken
from its input (domains, crawl and bucket names, paths), so raw HTML in the Markdown is shown as
text, never passed through (the html_block, html, autolink and automail rules are off), and a table
cell built from input goes through `cell()` so that a `|` or a link bracket cannot change the table.
Wide tables scroll sideways inside their own box instead of running off the page."""

from __future__ import annotations

import html
import xml.etree.ElementTree as etree

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
    ".table-scroll{overflow-x:auto;max-width:100%;margin:1em 0}"
    "table{border-collapse:collapse;font-size:0.9em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;white-space:nowrap}"
    "th{background:#f2f2f2}tbody tr:nth-child(even){background:#fafafa}"
    "img{max-width:100%;height:auto}code{background:#f4f4f4;padding:0 3px;overflow-wrap:anywhere}"
    "pre{overflow-x:auto;background:#f4f4f4;padding:0.6em}"
)
_MARKDOWN_SPECIAL = "\\`*[]|"


def cell(value: object) -> str:
    """`value` as the text of one Markdown table cell: the characters that would end the cell or start
    code, a link or emphasis are escaped (`_` is kept: inside a word it is no emphasis, and names keep
    their spelling in the Markdown), and a line break becomes a space."""
    s = " ".join(str(value).split())
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in s)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown pipe table as lines (header, separator, one line per row; the first column left-aligned,
    the others right-aligned). The caller puts a blank line before it: without one it is no table."""
    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


class _WrapTables(Treeprocessor):
    """Put every <table> in a <div class="table-scroll"> so that a wide table scrolls on its own."""

    def run(self, root: etree.Element) -> None:
        for parent in list(root.iter()):
            for k, child in enumerate(list(parent)):
                if child.tag == "table":
                    box = etree.Element("div", {"class": "table-scroll"})
                    parent.remove(child)
                    box.append(child)
                    parent.insert(k, box)


class _ReportExtension(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (the library's name)
        md.preprocessors.deregister("html_block")
        for name in ("html", "autolink", "automail"):
            md.inlinePatterns.deregister(name)
        md.treeprocessors.register(_WrapTables(md), "wrap_tables", 1)


def render_markdown(text: str) -> str:
    """The HTML body of Markdown `text`."""
    return markdown.markdown(text, extensions=["tables", "fenced_code", _ReportExtension()], output_format="html")


def markdown_to_html(md: list[str] | str, title: str) -> str:
    """`md` (lines, or one text) as a standalone HTML page titled `title`."""
    text = md if isinstance(md, str) else "\n".join(md)
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + render_markdown(text) + "\n</body></html>\n")
