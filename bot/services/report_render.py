"""The satisfaction report written out: HTML with its charts (PNG drawn with matplotlib, embedded as
base64), Markdown, or CSV; and one picture for a chat that takes no files.

Every word comes from `locales/<lang>/report.toml`; this module holds only layout. The charts carry
digits only (indicator numbers, scores 1–5, per cent), so they read the same whatever fonts the
machine has; the numbered table beside each one names the indicators. matplotlib is imported when a
chart is drawn, not with this module (its import alone takes a good part of a second).
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import jinja2

from bot.services.satisfaction import (
    OTHER,
    OVERALL,
    SCORES,
    SMALL,
    THRESHOLD,
    UNION,
    GroupFigures,
    IndicatorFigures,
    SatisfactionReport,
)

if TYPE_CHECKING:
    from bot.locale import Locale

FORMATS = ("html", "md", "csv")
MIME = {"html": "text/html", "md": "text/markdown", "csv": "text/csv", "png": "image/png"}
# Score 1 (worst) to 5 (best): red to green, told apart without colour by their order too.
_COLOURS = ("#c0392b", "#e67e22", "#f1c40f", "#7fb77e", "#27ae60")


@dataclass(frozen=True)
class Words:
    """The report's labels in one language, and its numbers written the same way in every format."""

    locale: Locale
    lang: str
    report: SatisfactionReport

    def __call__(self, key: str, **context: Any) -> str:
        return self.locale.text(self.lang, f"report.{key}", **context)

    def indicator(self, indicator_id: str) -> str:
        for i in self.report.indicators:
            if i.id == indicator_id:
                return str(i.label(self.lang))
        return indicator_id

    def category(self, category: str) -> str:
        key = f"category_{category}"
        return self(key) if f"report.{key}" in self._keys else category

    def score_headers(self) -> list[str]:
        return [self("col_score", score=s) for s in SCORES]

    def categories(self, categories: tuple[str, ...]) -> list[str]:
        return [self.category(c) for c in categories]

    def group(self, group: GroupFigures) -> str:
        if group.key == OVERALL:
            return self("group_overall")
        if group.key in (UNION, OTHER):
            return self(f"group_{group.key}")
        return group.name or group.key

    def hidden(self, why: str | None) -> str:
        return self("hidden_small") if why == SMALL else self("hidden_withheld")

    def count(self, n: int | None, why: str | None = None) -> str:
        return self.hidden(why) if why is not None or n is None else str(n)

    def average(self, f: IndicatorFigures) -> str:
        return self.hidden(f.hidden) if f.hidden is not None or f.average is None else f"{f.average:.2f}"

    def change(self, f: IndicatorFigures, *, plain: bool = False) -> str:
        """+0.12 or −0.12 (a true minus sign to read; a hyphen, `plain`, for a spreadsheet to compute)."""
        if f.hidden is not None or f.change is None:
            return self("no_change")
        if not round(f.change, 2):
            return "0.00"
        return f"{f.change:+.2f}" if plain else f"{f.change:+.2f}".replace("-", "−")

    def median(self, g: GroupFigures) -> str:
        if g.median_hidden is not None:
            return self.hidden(g.median_hidden)
        return self("no_answers") if g.median_days is None else f"{g.median_days:g}"

    @property
    def _keys(self) -> set[str]:
        return self.locale.keys(self.lang)


# -- charts ----------------------------------------------------------------------------------------
class Charts:
    """Draws each group's chart on one figure kept for the whole report: one horizontal bar per
    indicator split by score (1 left, 5 right), in per cent of those who rated it, numbered as the
    table beside it; a hidden indicator leaves its row empty. Setting up a figure's axes and ticks
    costs more than drawing the bars, so they are made once and only the bars change."""

    def __init__(self, rows: int, *, width: float = 6.4) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        self.rows = rows
        self.figure = Figure(figsize=(width, 0.42 * rows + 1.0), dpi=90)
        FigureCanvasAgg(self.figure)
        axes = self.axes = self.figure.add_subplot()
        axes.set_xlim(0, 100)
        axes.set_ylim(rows - 0.5, -0.5)  # indicator 1 at the top, as in the table
        axes.set_yticks(range(rows), [str(n) for n in range(1, rows + 1)])
        axes.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        handles = [Patch(color=c, label=str(s)) for s, c in zip(SCORES, _COLOURS, strict=True)]
        axes.legend(handles=handles, ncols=5, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        self.figure.subplots_adjust(left=0.06, right=0.97, bottom=0.5 / (0.42 * rows + 1.0), top=0.82)

    def png(self, group: GroupFigures) -> bytes | None:
        """The chart of `group`, or None when it shows no indicator."""
        shown = [(n, f) for n, f in enumerate(group.indicators) if f.hidden is None and f.distribution and f.rated]
        if not shown:
            return None
        for container in list(self.axes.containers):
            container.remove()
        left = [0.0] * len(shown)
        for s, colour in zip(SCORES, _COLOURS, strict=True):
            shares = [100 * (f.distribution or ())[s - 1] / (f.rated or 1) for _, f in shown]
            self.axes.barh([n for n, _ in shown], shares, left=left, color=colour, height=0.6)
            left = [a + b for a, b in zip(left, shares, strict=True)]
        out = io.BytesIO()
        self.figure.savefig(out, format="png")
        return out.getvalue()


def chart_png(group: GroupFigures, *, width: float = 6.4) -> bytes | None:
    """One group's chart on a figure of its own (see `Charts`)."""
    return Charts(len(group.indicators), width=width).png(group) if group.indicators else None


def _data_uri(png: bytes | None) -> str | None:
    return "data:image/png;base64," + base64.b64encode(png).decode() if png else None


# -- HTML and Markdown -----------------------------------------------------------------------------
_HTML = """<!DOCTYPE html>
<html lang="{{ html_lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ w('title', union=union, period=r.period) }}</title>
<style>
body { font-family: "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.5; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child, td.name { text-align: left; }
.hidden { color: #888; }
.note { color: #555; font-size: .9rem; }
img { max-width: 100%; }
</style>
</head>
<body>
<h1>{{ w('title', union=union, period=r.period) }}</h1>
<p>{{ w('subtitle', period=r.period, previous=r.previous, generated=generated) }}</p>
<p>{{ w('intro', threshold=threshold) }}</p>
{% macro block(g) %}
{% if g.hidden %}
<p class="hidden">{{ w('group_reviews', n=w.count(None, g.hidden)) }}</p>
{% else %}
<p>{{ w('group_reviews', n=g.reviews) }}</p>
{% set png = charts.get(g.key) %}
{% if png %}<img alt="{{ w('chart_alt', group=w.group(g)) }}" src="{{ png }}">{% endif %}
<table>
<tr><th>{{ w('col_number') }}</th><th>{{ w('col_indicator') }}</th><th>{{ w('col_rated') }}</th>
{% for s in scores %}<th>{{ w('col_score', score=s) }}</th>{% endfor %}
<th>{{ w('col_average') }}</th><th>{{ w('col_change') }}</th></tr>
{% for f in g.indicators %}
<tr><td>{{ loop.index }}</td><td class="name">{{ w.indicator(f.indicator) }}</td>
{% if f.hidden %}<td class="hidden" colspan="{{ scores|length + 3 }}">{{ w.hidden(f.hidden) }}</td>
{% else %}<td>{{ f.rated }}</td>{% for n in f.distribution %}<td>{{ n }}</td>{% endfor %}
<td>{{ w.average(f) }}</td><td>{{ w.change(f) }}</td>{% endif %}</tr>
{% endfor %}
</table>
<p>{{ w('followup', answered=w.count(g.answered), closed=w.count(g.closed),
        reviews=g.reviews, median=w.median(g)) }}</p>
{% if g.key != 'overall' %}
<p>{{ w('main_categories', categories=w.categories(g.main_categories), threshold=threshold) }}</p>
{% endif %}
{% endif %}
{% endmacro %}
<h2>{{ w('section_overall') }}</h2>
{{ block(r.overall) }}
{% if r.categories %}
<h2>{{ w('section_categories') }}</h2>
<table>
<tr><th>{{ w('col_category') }}</th><th>{{ w('col_complaints') }}</th></tr>
{% for c in r.categories %}
<tr><td>{{ w.category(c.category) }}</td>
<td{% if c.hidden %} class="hidden"{% endif %}>{{ w.count(c.count, c.hidden) }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if r.groups %}
<h2>{{ w('section_comparison') }}</h2>
<table>
<tr><th>{{ w('col_group') }}</th><th>{{ w('col_reviews') }}</th>
{% for i in r.indicators %}<th>{{ w.indicator(i.id) }}</th>{% endfor %}</tr>
{% for g in r.groups %}
<tr><td>{{ w.group(g) }}</td>
{% if g.hidden %}
<td class="hidden">{{ w.count(None, g.hidden) }}</td><td class="hidden" colspan="{{ r.indicators|length }}"></td>
{% else %}
<td>{{ g.reviews }}</td>
{% for f in g.indicators %}
<td{% if f.hidden %} class="hidden"{% endif %}>{{ w.average(f) }}</td>
{% endfor %}
{% endif %}
</tr>
{% endfor %}
</table>
<h2>{{ w('section_groups') }}</h2>
{% for g in r.groups %}
<h3>{{ w.group(g) }}</h3>
{{ block(g) }}
{% endfor %}
{% endif %}
<h2>{{ w('section_notes') }}</h2>
<p class="note">{{ w('note_small', threshold=threshold) }}</p>
<p class="note">{{ w('note_withheld') }}</p>
<p class="note">{{ w('note_change') }}</p>
<p class="note">{{ w('note_text') }}</p>
</body>
</html>
"""

_MD = """# {{ w('title', union=union, period=r.period) }}

{{ w('subtitle', period=r.period, previous=r.previous, generated=generated) }}

{{ w('intro', threshold=threshold) }}
{% macro block(g) %}
{% if g.hidden %}

{{ w('group_reviews', n=w.count(None, g.hidden)) }}
{% else %}

{{ w('group_reviews', n=g.reviews) }}

| {{ w('col_number') }} | {{ w('col_indicator') }} | {{ w('col_rated') }} | {{ w.score_headers() | join(' | ') }} |
{{- ' ' ~ w('col_average') }} | {{ w('col_change') }} |
|---|---|---|{% for s in scores %}---|{% endfor %}---|---|
{% for f in g.indicators %}
{% if f.hidden %}
| {{ loop.index }} | {{ w.indicator(f.indicator) }} | {{ w.hidden(f.hidden) }} |{% for s in scores %} |{% endfor %} | |
{% else %}
| {{ loop.index }} | {{ w.indicator(f.indicator) }} | {{ f.rated }} | {{ f.distribution | join(' | ') }} |
{{- ' ' ~ w.average(f) }} | {{ w.change(f) }} |
{% endif %}
{% endfor %}

{{ w('followup', answered=w.count(g.answered), closed=w.count(g.closed),
     reviews=g.reviews, median=w.median(g)) }}
{% if g.key != 'overall' %}

{{ w('main_categories', categories=w.categories(g.main_categories), threshold=threshold) }}
{% endif %}
{% endif %}
{% endmacro %}

## {{ w('section_overall') }}
{{ block(r.overall) }}
{% if r.categories %}

## {{ w('section_categories') }}

| {{ w('col_category') }} | {{ w('col_complaints') }} |
|---|---|
{% for c in r.categories %}
| {{ w.category(c.category) }} | {{ w.count(c.count, c.hidden) }} |
{% endfor %}
{% endif %}
{% for g in r.groups %}

## {{ w.group(g) }}
{{ block(g) }}
{% endfor %}

## {{ w('section_notes') }}

- {{ w('note_small', threshold=threshold) }}
- {{ w('note_withheld') }}
- {{ w('note_change') }}
- {{ w('note_text') }}
"""

_ENV = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_HTML_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_TEMPLATES = {"html": _HTML_ENV.from_string(_HTML), "md": _ENV.from_string(_MD)}


def _context(report: SatisfactionReport, w: Words, union: str, generated: date) -> dict[str, Any]:
    return {
        "r": report,
        "w": w,
        "union": union,
        "generated": generated.isoformat(),
        "threshold": THRESHOLD,
        "scores": SCORES,
        "html_lang": w.lang.replace("_", "-"),
    }


def render_html(report: SatisfactionReport, locale: Locale, lang: str, union: str, generated: date) -> bytes:
    w = Words(locale, lang, report)
    drawn = Charts(len(report.indicators)) if report.overall.hidden is None and report.indicators else None
    charts = {g.key: _data_uri(drawn.png(g)) for g in (report.overall, *report.groups) if drawn and g.hidden is None}
    context = _context(report, w, union, generated) | {"charts": {k: v for k, v in charts.items() if v}}
    return _TEMPLATES["html"].render(context).encode("utf-8")


def render_md(report: SatisfactionReport, locale: Locale, lang: str, union: str, generated: date) -> bytes:
    w = Words(locale, lang, report)
    return _TEMPLATES["md"].render(_context(report, w, union, generated)).encode("utf-8")


def render_csv(report: SatisfactionReport, locale: Locale, lang: str, union: str, generated: date) -> bytes:
    """One figure a row: group, indicator (or blank), what is measured, the value ("<5" when hidden)."""
    w = Words(locale, lang, report)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([w("col_period"), w("col_group"), w("col_indicator"), w("col_measure"), w("col_value")])

    def row(group: str, indicator: str, measure: str, value: str) -> None:
        writer.writerow([report.period, group, indicator, measure, value])

    for g in (report.overall, *report.groups):
        name = w.group(g)
        row(name, "", w("col_reviews"), w.count(g.reviews, g.hidden))
        if g.hidden is not None:
            continue
        for f in g.indicators:
            label = w.indicator(f.indicator)
            row(name, label, w("col_rated"), w.count(f.rated, f.hidden))
            if f.hidden is not None:
                continue
            for s, n in zip(SCORES, f.distribution or (), strict=True):
                row(name, label, w("col_score", score=s), str(n))
            row(name, label, w("col_average"), w.average(f))
            row(name, label, w("col_change"), w.change(f, plain=True))
        row(name, "", w("col_answered"), w.count(g.answered))
        row(name, "", w("col_closed"), w.count(g.closed))
        row(name, "", w("col_median_days"), w.median(g))
        if g.key != OVERALL:
            row(name, "", w("col_main_categories"), "、".join(map(w.category, g.main_categories)))
    for c in report.categories:
        row(
            w("group_overall"), "", w("col_category_count", category=w.category(c.category)), w.count(c.count, c.hidden)
        )
    # The BOM lets Excel read the Chinese.
    return out.getvalue().encode("utf-8-sig")


RENDERERS: dict[str, Callable[[SatisfactionReport, Locale, str, str, date], bytes]] = {
    "html": render_html,
    "md": render_md,
    "csv": render_csv,
}


def render(report: SatisfactionReport, fmt: str, locale: Locale, lang: str, union: str, generated: date) -> bytes:
    return RENDERERS[fmt](report, locale, lang, union, generated)


def file_name(report: SatisfactionReport, fmt: str) -> str:
    return f"satisfaction-{report.period}.{fmt}"


# -- for a chat ------------------------------------------------------------------------------------
def summary_text(report: SatisfactionReport, locale: Locale, lang: str, union: str) -> str:
    """The report in a few lines, sent with the picture: the overall averages, numbered as the chart's
    bars, and each group's review count and averages."""
    w = Words(locale, lang, report)
    return w(
        "summary",
        union=union,
        period=report.period,
        overall=_summary_group(w, report.overall),
        groups=[_summary_group(w, g) for g in report.groups],
        threshold=THRESHOLD,
    )


def _summary_group(w: Words, g: GroupFigures) -> dict[str, Any]:
    return {
        "name": w.group(g),
        "reviews": w.count(g.reviews, g.hidden),
        "shown": g.hidden is None,
        "withheld": g.hidden is not None and g.hidden != SMALL,
        "indicators": [
            {"number": n, "label": w.indicator(f.indicator), "average": w.average(f), "change": w.change(f)}
            for n, f in enumerate(g.indicators, 1)
        ],
    }


def picture(report: SatisfactionReport) -> bytes | None:
    """The overall chart, for a chat that takes pictures but no files."""
    return chart_png(report.overall, width=6.0)
