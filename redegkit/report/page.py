"""One self-contained HTML page: sections of tables, figures and images, no script, no network.

Every image is inlined as a ``data:`` URI (PNG, or SVG for charts), the style sheet is inline, and
the page loads nothing else (even the favicon is an empty ``data:`` URI), so a report can be
mailed, archived or opened from any folder. Text is escaped here, in one place: callers pass plain
strings, and :class:`Html` fragments for markup they built with these helpers.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__

_CSS = """
:root { --fg: #1d2125; --muted: #5f6b76; --line: #d9dee3; --bg: #ffffff; --band: #f4f6f8;
        --good: #1b7f3b; --bad: #b3261e; --accent: #2f5fb3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: var(--muted); }
nav { padding: 8px 28px; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1500px; }
section { margin: 22px 0 30px; }
h2 { font-size: 18px; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 8px; }
p.note { color: var(--muted); margin: 6px 0; max-width: 980px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; }
tr.hl td { background: #eef3fb; font-weight: 600; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 6px 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.good { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); max-width: 420px; }
img { display: block; max-width: 100%; height: auto; }
img.px { image-rendering: pixelated; }
table.grid td { border: 0; padding: 4px; text-align: center; }
table.grid th { text-align: center; }
pre { background: var(--band); padding: 8px; overflow: auto; max-height: 360px; font-size: 12px; }
details > summary { cursor: pointer; color: var(--accent); }
footer { padding: 12px 28px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); }
"""


class ReportError(ValueError):
    """A target a report cannot be made of (the message says what was found instead)."""


class Html(str):
    """A fragment of markup that is already safe (built by the helpers here); plain ``str`` is text."""


def esc(x: Any) -> Html:
    """Text (or an :class:`Html` fragment, kept as is) as markup."""
    return x if isinstance(x, Html) else Html(html.escape(str(x), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, *children: Any, cls: str | None = None, **attrs: Any) -> Html:
    """``<name attrs>children</name>``; attribute values are escaped, ``None`` ones dropped."""
    a = "".join(f' {k.rstrip("_")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    c = f' class="{esc(cls)}"' if cls else ""
    return Html(f"<{name}{c}{a}>{join(children)}</{name}>")


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img_bytes(data: bytes, mime: str, alt: str, *, width: int | None = None, pixelated: bool = False) -> Html:
    """An ``<img>`` of encoded bytes (``image/png``, ``image/svg+xml``, ``image/jpeg``)."""
    w = f' width="{int(width)}"' if width else ""
    cls = ' class="px"' if pixelated else ""
    return Html(f'<img{cls} src="{data_uri(data, mime)}" alt="{esc(alt)}"{w}>')


def img_array(img: np.ndarray, alt: str, *, width: int | None = None, pixelated: bool = False) -> Html:
    """An ``<img>`` of an RGB uint8 HxWx3 array, as PNG."""
    from ..io.images import encode_image

    return img_bytes(
        encode_image(img, "png", png_level=6), "image/png", alt, width=width, pixelated=pixelated
    )


def figure(content: Html, caption: str | Html | None = None) -> Html:
    return tag("figure", content, tag("figcaption", caption) if caption else "")


def figs(*items: Html) -> Html:
    """Figures side by side, wrapping."""
    return tag("div", *items, cls="figs")


def note(text: str | Html) -> Html:
    return tag("p", text, cls="note")


def kv(items: Sequence[tuple[str, Any]] | dict[str, Any]) -> Html:
    """A definition list of (name, value) rows; dicts and lists as compact JSON."""
    rows = items.items() if isinstance(items, dict) else items
    parts = []
    for k, v in rows:
        if isinstance(v, (dict, list)):
            v = json.dumps(v, default=str)
        parts += [tag("dt", k), tag("dd", v)]
    return tag("dl", *parts, cls="kv")


def fmt(v: Any, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant decimals, integers as they are."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if not np.isfinite(v):
        return str(float(v))
    return f"{float(v):.{digits}f}"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    highlight: Sequence[int] = (),
    cls: str | None = None,
) -> Html:
    """A table; columns in ``numeric`` are right-aligned, rows in ``highlight`` emphasised."""
    num = set(numeric)
    head = tag("tr", *(tag("th", h, cls="num" if i in num else None) for i, h in enumerate(headers)))
    body = [
        tag(
            "tr",
            *(tag("td", c, cls="num" if i in num else None) for i, c in enumerate(r)),
            cls="hl" if j in set(highlight) else None,
        )
        for j, r in enumerate(rows)
    ]
    return tag("table", tag("thead", head), tag("tbody", *body), cls=cls)


def details(summary: str, content: Any) -> Html:
    return tag("details", tag("summary", summary), content)


def pre_json(obj: Any) -> Html:
    return tag("pre", json.dumps(obj, indent=2, default=str))


def verdict(ok: bool, yes: str = "met", no: str = "missed") -> Html:
    return tag("span", yes if ok else no, cls="good" if ok else "bad")


def _anchor(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-") or "section"


@dataclass
class Page:
    """A report page: a title, a subtitle line or two, then sections in order."""

    title: str
    subtitle: list[str] = field(default_factory=list)
    sections: list[tuple[str, Html]] = field(default_factory=list)
    source: str = ""

    def add(self, title: str, *parts: Any) -> None:
        """A section (``parts``: text or :class:`Html`)."""
        self.sections.append((title, join(parts)))

    def render(self) -> str:
        """The whole document."""
        ids: list[str] = []
        for t, _ in self.sections:
            a = _anchor(t)
            ids.append(a if a not in ids else f"{a}-{len(ids)}")
        nav = tag("nav", *(tag("a", t, href=f"#{a}") for (t, _), a in zip(self.sections, ids, strict=True)))
        body = join(
            tag("section", tag("h2", t), content, id=a)
            for (t, content), a in zip(self.sections, ids, strict=True)
        )
        head = (
            '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{esc(self.title)}</title><style>{_CSS}</style>'
        )
        header = tag("header", tag("h1", self.title), *(tag("p", s) for s in self.subtitle))
        foot = tag(
            "footer",
            f"redegkit {__version__} · redeg report"
            + (f" · from {self.source}" if self.source else "")
            + " · self-contained: every image is inlined, nothing is loaded from the network",
        )
        return (
            f'<!doctype html>\n<html lang="en"><head>{head}</head>'
            f"<body>{header}{nav}<main>{body}</main>{foot}</body></html>\n"
        )
