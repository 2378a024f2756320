"""One self-contained HTML page of sections: plotly.js inline, x axes linked, no server.

A page is a list of :class:`Section`. A section is a function of the runs on the page
that returns its :class:`Content` (HTML and plotly figures) or an :class:`Absent` note
(the run has no battery, no diagnostics ran, ...): absent sections are left out and
named in a short list, never drawn as an empty plot. Time-series figures marked
``linked`` share their x axis in the browser: zoom or pan one, all follow.

To add a section (economics, carbon, ...): write ``build(runs) -> Content | Absent`` in
a module of its own and list ``Section("id", "Title", build)`` in
:data:`twin.reporting.sections.SECTIONS` (or pass ``sections=`` to :func:`render_page`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import plotly.io as pio

from twin.reporting.outcome import banner

if TYPE_CHECKING:
    from twin.reporting.runs import RunData

__all__ = ["Absent", "Content", "Section", "render_page"]


@dataclass(frozen=True)
class Content:
    """What a section shows.

    Attributes
    ----------
    html : str
        HTML before the figures (a table, a paragraph); already escaped.
    figures : tuple of plotly.graph_objects.Figure
        Its plots, in order, each with its ``layout.height`` set.
    linked : bool
        Whether the figures are time series whose x axis follows the others' zoom.
    after : str
        HTML after the figures.
    """

    html: str = ""
    figures: tuple[go.Figure, ...] = ()
    linked: bool = True
    after: str = ""


@dataclass(frozen=True)
class Absent:
    """Why a section is not on the page (``no battery in this run``)."""

    note: str


@dataclass(frozen=True)
class Section:
    """A part of the page: DOM id ``sec-<id>``, a heading, and how to build it.

    Attributes
    ----------
    id : str
        Short name; the section is ``<section id="sec-<id>">``, its figures
        ``fig-<id>-<n>``, its note when absent ``absent-<id>``.
    title : str
        Its heading.
    build : callable
        ``build(runs) -> Content | Absent``; ``runs`` are the
        :class:`~twin.reporting.runs.RunData` on the page (one, or several compared).
    """

    id: str
    title: str
    build: Callable[[Sequence[RunData]], Content | Absent] = field(compare=False)


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:1400px}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 12px;text-align:left;
vertical-align:top}th{background:#eee}tr:nth-child(even) td{background:#f6f6f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.differs td{font-weight:600}
nav a{margin-right:1em}.note{color:#555}.figure{margin:.4em 0}
.failed{background:#b71c1c;color:#fff;padding:1em 1.5em;margin-bottom:1.5em;
border-radius:4px;font-size:1.1em}.failed code{color:#fff}
@media (min-width:1100px){main.single #sec-summary,main.single #sec-kpis{display:inline-block;
vertical-align:top;width:48%;margin-right:1.5%}}
"""

#: Zoom one linked graph, the others follow (guarded against relayout echo).
LINK_JS = """
window.addEventListener('load', function () {
  var graphs = Array.prototype.slice.call(
    document.querySelectorAll('.linked .plotly-graph-div'));
  var busy = false;
  graphs.forEach(function (g) {
    g.on('plotly_relayout', function (ev) {
      if (busy) return;
      var u = {};
      if (ev['xaxis.autorange']) u['xaxis.autorange'] = true;
      else if (ev['xaxis.range[0]'] !== undefined) {
        u['xaxis.range'] = [ev['xaxis.range[0]'], ev['xaxis.range[1]']];
      } else if (ev['xaxis.range']) u['xaxis.range'] = ev['xaxis.range'];
      else return;
      busy = true;
      Promise.all(graphs.filter(function (o) { return o !== g; }).map(function (o) {
        return Plotly.relayout(o, u);
      })).then(function () { busy = false; }, function () { busy = false; });
    });
  });
  document.body.setAttribute('data-linked', String(graphs.length));
});
"""

#: plotly's per-graph options.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@cache
def _plotly_js() -> str:
    """plotly.js itself, to inline (the page works offline)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _figure_html(fig: go.Figure, div_id: str) -> str:
    height = fig.layout.height or 360
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config=PLOT_CONFIG,
        default_height=f"{height}px",
        validate=False,
    )


def _section_html(section: Section, content: Content) -> str:
    figures = "\n".join(
        f'<div class="figure">{_figure_html(fig, f"fig-{section.id}-{i}")}</div>'
        for i, fig in enumerate(content.figures)
    )
    cls = ' class="linked"' if content.linked and content.figures else ""
    return (
        f'<section id="sec-{section.id}"{cls}><h2>{html.escape(section.title)}</h2>'
        f"{content.html}{figures}{content.after}</section>"
    )


def _banners(runs: Sequence[RunData]) -> str:
    parts = []
    for run in runs:
        text = banner(run.outcome)
        if text and len(runs) > 1:
            label = f"<p><strong>{html.escape(run.label)}</strong></p>"
            text = text.replace('role="alert">', f'role="alert">{label}', 1)
        parts.append(text)
    return "".join(parts)


def render_page(
    runs: Sequence[RunData], title: str, subtitle: str, sections: Sequence[Section]
) -> str:
    """The whole page: banners of failed runs, heading, sections, absent-section notes.

    Parameters
    ----------
    runs : sequence of RunData
        The runs on the page (one for a run's report; several side by side).
    title : str
        Page heading and ``<title>`` (plain text).
    subtitle : str
        A line under the heading (plain text).
    sections : sequence of Section
        In page order.
    """
    built = [(section, section.build(runs)) for section in sections]
    shown = [(s, c) for s, c in built if isinstance(c, Content)]
    absent = [(s, c) for s, c in built if isinstance(c, Absent)]
    nav = " ".join(f'<a href="#sec-{s.id}">{html.escape(s.title)}</a>' for s, _ in shown)
    notes = ""
    if absent:
        items = "".join(
            f'<li id="absent-{s.id}"><strong>{html.escape(s.title)}</strong>: '
            f"{html.escape(c.note)}</li>"
            for s, c in absent
        )
        notes = f'<section id="absent"><h2>Not in this report</h2><ul class="note">{items}</ul>'
        notes += "</section>"
    body = "\n".join(_section_html(s, c) for s, c in shown)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}: twin report</title>"
        f"<style>{CSS}</style><script>{_plotly_js()}</script></head>\n"
        f'<body>{_banners(runs)}<main class="{"single" if len(runs) == 1 else "several"}">'
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="note">{html.escape(subtitle)}</p><nav>{nav}</nav>\n'
        f"{body}\n{notes}</main>\n<script>{LINK_JS}</script></body></html>\n"
    )
