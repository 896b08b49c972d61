"""Render a report, given as a list of blocks, to Markdown and to self-contained HTML.

The report is built once as data (:class:`Heading`, :class:`Paragraph`, :class:`Bullets`,
:class:`Table`, :class:`Image`) and rendered twice, so the two files can never disagree. The HTML
embeds every image as a base64 data URI and carries its CSS inline: it opens offline, from
anywhere, with no external resource. Markdown tables are written here rather than through
``pandas.to_markdown`` because that needs ``tabulate``, which is not a dependency of the package.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

from .summary import text


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of display strings; ``caption`` says what the numbers are."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]], columns: Sequence[str], caption: str = "") -> "Table":
        return cls(tuple(columns), tuple(tuple(text(r.get(c)) for c in columns) for r in records), caption)


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str
    width: str = "640px"


Block = Union[Heading, Paragraph, Bullets, Table, Image]


# ---------------------------------------------------------------------------------------------
# Markdown


def _md_cell(value: str) -> str:
    # A pipe would end the cell and a newline the row.
    return value.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(_md_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(blocks: Sequence[Block], base_dir: Path) -> str:
    """Markdown text; images are linked relative to ``base_dir`` (the folder of the .md file)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            table = markdown_table(block.columns, block.rows) if block.rows else "_(no rows)_"
            parts.append((f"*{block.caption}*\n\n" if block.caption else "") + table)
        elif isinstance(block, Image):
            rel = Path(os.path.relpath(Path(block.path).resolve(), Path(base_dir).resolve())).as_posix()
            parts.append(f"![{block.caption}]({rel})\n\n*{block.caption}*")
        else:
            raise TypeError(f"to_markdown: unknown report block {type(block).__name__}")
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }
figure { margin: 1em 0 2em; }
figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; height: auto; image-rendering: pixelated; }
""".strip()


def data_uri(path: Path) -> str:
    """The PNG at ``path`` as a base64 data URI."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"report image {path} does not exist")
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_table(block: Table) -> str:
    if not block.rows:
        return (f"<p><em>{html.escape(block.caption)}</em></p>" if block.caption else "") + "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in block.rows)
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """A self-contained HTML page: inline CSS, images as data URIs, no external resources."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Image):
            parts.append(f'<figure><img src="{data_uri(block.path)}" alt="{html.escape(block.caption)}" '
                         f'style="max-width: {block.width}"><figcaption>{html.escape(block.caption)}</figcaption>'
                         "</figure>")
        else:
            raise TypeError(f"to_html: unknown report block {type(block).__name__}")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}'
            f"</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
