"""Self-contained HTML pages: text, tables and Vega-Lite charts, the Vega libraries inlined.

The JavaScript comes from ``vl-convert-python`` (a wheel that carries Vega, Vega-Lite
and Vega-Embed), so a page renders from a file, offline, with nothing fetched.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from functools import cache

import vl_convert


@cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script that sets window.vegaEmbed (bundled once per process)."""
    # vl_convert's stub marks `snippet` required; without it the call returns the bundle alone.
    return vl_convert.javascript_bundle()  # pyright: ignore[reportCallIssue]


# Each chart is embedded from a JSON script tag; the page marks a rendered chart (data-rendered)
# and lists failures in #errors, so a person and a browser test both see what did not draw.
_RENDER = """
const errors = document.getElementById("errors");
for (const holder of document.querySelectorAll("[data-chart]")) {
  const spec = JSON.parse(document.getElementById(holder.dataset.chart).textContent);
  window.vegaEmbed(holder, spec, {renderer: "svg", actions: false})
    .then(() => { holder.dataset.rendered = "true"; })
    .catch((err) => {
      holder.dataset.rendered = "error";
      errors.textContent += holder.dataset.chart + ": " + err + "\\n";
      console.error(err);
    });
}
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 980px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
.status { display: inline-block; padding: 0.1rem 0.6rem; border-radius: 0.8rem; font-weight: 600; }
.status-active { background: #d9f2d9; } .status-ended { background: #e0e0f0; }
.status-insufficient_history, .status-invalid, .status-unknown { background: #f8d7d7; }
.note { background: #fff8e1; padding: 0.5rem 0.8rem; border-left: 4px solid #f0c000; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; } td, th { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section { margin: 1.5rem 0; } #errors { color: #b00; white-space: pre-wrap; }
"""


@dataclass
class Page:
    """A report page assembled in order: headings, paragraphs, tables and charts."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    charts: list[dict] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, css_class: str = "") -> None:
        attr = f' class="{css_class}"' if css_class else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")

    def raw(self, markup: str) -> None:
        """Markup built by the caller from escaped parts (links, badges)."""
        self.parts.append(markup)

    def table(self, columns: list[str], rows: list[list]) -> None:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def chart(self, spec: dict) -> None:
        chart_id = f"chart-{len(self.charts)}"
        self.charts.append(spec)
        self.parts.append(f'<section><div data-chart="{chart_id}-spec" id="{chart_id}"></div></section>')

    def render(self) -> str:
        specs = "".join(
            f'<script type="application/json" id="chart-{i}-spec">{_json_for_script(spec)}</script>'
            for i, spec in enumerate(self.charts)
        )
        scripts = (
            f'<script type="module">{vega_bundle()}</script><script type="module">{_RENDER}</script>'
            if self.charts
            else ""
        )
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f'<h1>{html.escape(self.title)}</h1><p class="sub">{html.escape(self.subtitle)}</p>'
            f'{"".join(self.parts)}<div id="errors"></div>{specs}{scripts}</body></html>'
        )


def link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'


def badge(status: str) -> str:
    return f'<span class="status status-{html.escape(status)}">{html.escape(status)}</span>'


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:,.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, Markup):
        return f"<td>{value}</td>"
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


class Markup(str):
    """Text already escaped (a link) that a table cell keeps as it is."""


def _json_for_script(spec: dict) -> str:
    # "</" would close the script element early; JSON allows "<\/" for the same text.
    return json.dumps(spec, allow_nan=False, default=str).replace("</", "<\\/")
