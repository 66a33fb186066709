"""The satisfaction report (职工满意度情况通报) as figures: overall and per company, with every figure
that could point at a few people suppressed.

What a report shows, from `storage.reports` counts only (no review, no text ever reaches here): per
group (each company of the profile, the union's own service, and "other") the number of reviews; per
indicator the distribution of the 1–5 ratings, the average and its change since the previous period;
the main problem categories; follow-up (answered, closed, median days to the first answer).

Suppression (DESIGN.md, privacy rules):
- A group with fewer than 5 reviews shows "<5" and nothing else (`SMALL`); so does an indicator rated
  by fewer than 5 in a group, a category with fewer than 5 complaints, and a median of fewer than 5
  answers.
- Every figure is additive over the groups, and the overall is published: if exactly one group's
  figure is hidden, the overall minus the others gives it away. So a second group is hidden with it
  (`WITHHELD`), the smallest shown one with a figure, so that the hidden are none or at least two,
  whose sum alone can be worked out. This runs on the review counts (a hidden group hides all its
  figures: distribution cells, answered and closed counts with it), on each indicator's rated count
  (a hidden indicator hides its cells and average with it), and on the category counts (whose total
  is the overall count).
- The change since the previous period is shown only where both periods show the figure, the
  previous one suppressed by these same rules (so it says nothing its own report did not).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from bot.services.complaints import Indicator, complaint_settings

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx
    from storage.reports import PeriodFigures

THRESHOLD = 5  # a group, indicator, category or median of fewer than this is not shown
SMALL = "small"  # hidden: fewer than THRESHOLD
WITHHELD = "withheld"  # hidden so that a small figure cannot be worked out from the totals
SCORES = (1, 2, 3, 4, 5)
MAIN_CATEGORIES = 3  # per group, the categories of at least THRESHOLD complaints named, most first

OVERALL, UNION, OTHER = "overall", "union", "other"
_PERIOD = re.compile(r"(\d{4})-(\d{2})")


class BadPeriod(ValueError):
    """Not a month written YYYY-MM."""


# -- periods ---------------------------------------------------------------------------------------
def read_period(text: str) -> str | None:
    """'2026-11' (also 2026-1, 2026/11, full-width digits) as YYYY-MM, or None."""
    folded = text.strip().translate(str.maketrans("０１２３４５６７８９／－", "0123456789/-")).replace("/", "-")
    match = re.fullmatch(r"(\d{4})-(\d{1,2})", folded)
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        return None
    return f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"


def previous_period(period: str) -> str:
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise BadPeriod(period)
    year, month = int(match.group(1)), int(match.group(2))
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# -- what the union reports on ------------------------------------------------------------------------
def indicators(app: BotContext) -> tuple[Indicator, ...]:
    """The indicators the union reports, in its order, from the `[complaints]` settings."""
    return complaint_settings(app).indicators


# -- the report's figures -------------------------------------------------------------------------
@dataclass(frozen=True)
class IndicatorFigures:
    indicator: str
    hidden: str | None  # None, SMALL or WITHHELD
    rated: int | None = None
    distribution: tuple[int, ...] | None = None  # how many gave 1, 2, 3, 4, 5
    average: float | None = None
    change: float | None = None  # since the previous period; None where either period hides it


@dataclass(frozen=True)
class GroupFigures:
    key: str  # "overall", "company:<name>", "union", "other"
    name: str | None  # the company's name (a profile platform), for companies
    hidden: str | None
    reviews: int | None = None
    indicators: tuple[IndicatorFigures, ...] = ()
    answered: int | None = None
    closed: int | None = None
    median_days: float | None = None  # None: hidden (fewer than THRESHOLD answered) or none answered
    median_hidden: str | None = None
    main_categories: tuple[str, ...] = ()  # categories with at least THRESHOLD complaints, most first

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]


@dataclass(frozen=True)
class CategoryFigure:
    category: str
    hidden: str | None
    count: int | None = None


@dataclass(frozen=True)
class SatisfactionReport:
    period: str
    previous: str
    indicators: tuple[Indicator, ...]
    overall: GroupFigures
    groups: tuple[GroupFigures, ...]
    categories: tuple[CategoryFigure, ...]  # every category with complaints, most first; hidden ones last

    @property
    def empty(self) -> bool:
        return self.overall.hidden is None and not self.overall.reviews


# -- suppression -----------------------------------------------------------------------------------
def complementary(values: Mapping[str, int], hidden: Iterable[str]) -> tuple[set[str], bool]:
    """The hidden groups grown until the overall minus what is shown is never one group's figure: none
    hidden, or at least two (their sum alone can then be worked out, not either one). The smallest
    shown non-zero figure goes first, then a shown zero. Returns the hidden groups, and whether the
    total itself must be hidden too (there was no other group to hide)."""
    hidden = {g for g in hidden if g in values}
    if len(hidden) == 1:
        shown = sorted((values[g] <= 0, values[g], g) for g in values if g not in hidden)
        if not shown:
            return hidden, True
        hidden.add(shown[0][2])
    return hidden, False


def median_of(days: Mapping[int, int]) -> float | None:
    """The median of values given as {value: how many}: the middle one, or the mean of the two middle."""
    n = sum(days.values())
    if not n:
        return None
    wanted = (n // 2, n // 2 + 1) if n % 2 == 0 else (n // 2 + 1,)  # 1-based ranks of the middle
    found: list[int] = []
    seen = 0
    for value in sorted(days):
        seen += days[value]
        while len(found) < len(wanted) and seen >= wanted[len(found)]:
            found.append(value)
    return sum(found) / len(found)


@dataclass
class _Tally:
    """One group's counts, summed from the storage rows."""

    reviews: int = 0
    answered: int = 0
    closed: int = 0

    def __post_init__(self) -> None:
        self.categories: Counter[str] = Counter()
        self.days: Counter[int] = Counter()
        self.scores: dict[str, Counter[int]] = defaultdict(Counter)


def group_key(platforms: tuple[str, ...], kind: str, target: str | None) -> str:
    """Which group a review counts in. A target that is not a profile company (a name typed by a
    worker, say) counts as "other": no free text reaches a report."""
    if kind == "company" and target in platforms:
        return f"company:{target}"
    return UNION if kind == "union" else OTHER


def _tally(figures: PeriodFigures, platforms: tuple[str, ...]) -> dict[str, _Tally]:
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for c in figures.categories:
        t = tallies[group_key(platforms, c.target_kind, c.target)]
        t.reviews += c.reviews
        t.answered += c.answered
        t.closed += c.closed
        t.categories[c.category] += c.reviews
    for d in figures.answer_days:
        tallies[group_key(platforms, d.target_kind, d.target)].days[d.days] += d.reviews
    for s in figures.scores:
        tallies[group_key(platforms, s.target_kind, s.target)].scores[s.indicator][s.score] += s.reviews
    return dict(tallies)


def _order(platforms: tuple[str, ...], keys: Iterable[str]) -> list[str]:
    rank = {f"company:{p}": i for i, p in enumerate(platforms)} | {UNION: len(platforms), OTHER: len(platforms) + 1}
    return sorted(keys, key=lambda k: rank.get(k, len(rank)))


def _hidden_by(hidden: set[str], small: set[str]) -> Callable[[str], str | None]:
    return lambda g: (SMALL if g in small else WITHHELD) if g in hidden else None


def build(
    figures: PeriodFigures,
    previous: PeriodFigures | None,
    platforms: tuple[str, ...],
    indicator_labels: tuple[Indicator, ...],
) -> SatisfactionReport:
    """The report of `figures`' period, its changes against `previous` (None: no changes shown)."""
    ids = tuple(i.id for i in indicator_labels)
    now = _figures(figures, platforms, ids)
    before = _figures(previous, platforms, ids) if previous is not None else None
    if before is not None:
        now = _with_changes(now, before)
    overall, groups, categories = now
    prev = previous.period if previous is not None else previous_period(figures.period)
    return SatisfactionReport(figures.period, prev, indicator_labels, overall, groups, categories)


_Built = tuple[GroupFigures, tuple[GroupFigures, ...], tuple[CategoryFigure, ...]]


def _figures(figures: PeriodFigures, platforms: tuple[str, ...], ids: tuple[str, ...]) -> _Built:
    tallies = _tally(figures, platforms)
    keys = _order(platforms, tallies)
    total = _Tally()
    for t in tallies.values():
        total.reviews += t.reviews
        total.answered += t.answered
        total.closed += t.closed
        total.categories.update(t.categories)
        total.days.update(t.days)
        for i, counts in t.scores.items():
            total.scores[i].update(counts)
    if total.reviews < THRESHOLD:  # nothing can be shown without showing a few people
        overall = GroupFigures(OVERALL, None, SMALL) if total.reviews else GroupFigures(OVERALL, None, None, 0)
        groups = tuple(GroupFigures(k, _name(k), SMALL if tallies[k].reviews < THRESHOLD else WITHHELD) for k in keys)
        return overall, groups, ()

    # Groups: fewer than THRESHOLD reviews, then the second suppression on the review counts.
    small = {k for k in keys if tallies[k].reviews < THRESHOLD}
    hidden, _ = complementary({k: tallies[k].reviews for k in keys}, small)
    group_hidden = _hidden_by(hidden, small)

    # Each indicator: the hidden groups, those rated by fewer than THRESHOLD, and the second suppression
    # on the rated counts. Every figure of an indicator (its distribution cells, its sum of scores) is
    # hidden for the same groups, so none of them can be worked out either.
    per_indicator: dict[str, tuple[Callable[[str], str | None], bool]] = {}
    for i in ids:
        rated = {k: sum(tallies[k].scores[i].values()) for k in keys}
        small_i = {k for k in keys if k in hidden or rated[k] < THRESHOLD}
        hidden_i, total_hidden = complementary(rated, small_i)
        per_indicator[i] = (_hidden_by(hidden_i, small_i), total_hidden or sum(rated.values()) < THRESHOLD)

    # Follow-up (answered, closed) is shown with its group, so it is hidden for two groups or none.
    groups = tuple(_group(k, tallies[k], group_hidden(k), ids, {i: per_indicator[i][0](k) for i in ids}) for k in keys)
    overall = _group(
        OVERALL,
        total,
        None,
        ids,
        {i: (SMALL if per_indicator[i][1] else None) for i in ids},
    )
    return overall, groups, _categories(total)


def _name(key: str) -> str | None:
    return key.split(":", 1)[1] if key.startswith("company:") else None


def _group(
    key: str,
    t: _Tally,
    hidden: str | None,
    ids: tuple[str, ...],
    indicator_hidden: Mapping[str, str | None],
) -> GroupFigures:
    if hidden is not None:
        return GroupFigures(key, _name(key), hidden)
    figures = []
    for i in ids:
        if indicator_hidden[i] is not None:
            figures.append(IndicatorFigures(i, indicator_hidden[i]))
            continue
        counts = t.scores[i]
        rated = sum(counts.values())
        average = sum(s * n for s, n in counts.items()) / rated
        figures.append(IndicatorFigures(i, None, rated, tuple(counts[s] for s in SCORES), average))
    median_hidden = SMALL if 0 < t.answered < THRESHOLD else None
    main = tuple(c for c, n in sorted(t.categories.items(), key=lambda cn: (-cn[1], cn[0])) if n >= THRESHOLD)
    return GroupFigures(
        key,
        _name(key),
        None,
        t.reviews,
        tuple(figures),
        t.answered,
        t.closed,
        median_of(t.days) if median_hidden is None else None,
        median_hidden,
        main[:MAIN_CATEGORIES],
    )


def _categories(total: _Tally) -> tuple[CategoryFigure, ...]:
    """The overall count of each category with complaints: fewer than THRESHOLD shows "<5", and one
    more is withheld when the total (the overall count) would give a lone hidden one away."""
    counts = dict(total.categories)
    small = {c for c, n in counts.items() if n < THRESHOLD}
    hidden, _ = complementary(counts, small)
    shown = sorted((c for c in counts if c not in hidden), key=lambda c: (-counts[c], c))
    out = [CategoryFigure(c, None, counts[c]) for c in shown]
    out += [CategoryFigure(c, WITHHELD) for c in sorted(hidden - small)]
    out += [CategoryFigure(c, SMALL) for c in sorted(small)]
    return tuple(out)


def _with_changes(now: _Built, before: _Built) -> _Built:
    overall, groups, categories = now
    previous = {g.key: g for g in (before[0], *before[1])}

    def changed(group: GroupFigures) -> GroupFigures:
        old = previous.get(group.key)
        if group.hidden is not None or old is None or old.hidden is not None:
            return group
        old_averages = {f.indicator: f.average for f in old.indicators if f.hidden is None}
        indicators = tuple(
            f
            if f.hidden is not None or old_averages.get(f.indicator) is None
            else IndicatorFigures(
                f.indicator, None, f.rated, f.distribution, f.average, f.average - old_averages[f.indicator]
            )
            for f in group.indicators
        )
        return replace(group, indicators=indicators)

    return changed(overall), tuple(changed(g) for g in groups), categories


# -- reading it ------------------------------------------------------------------------------------
async def satisfaction_report(app: BotContext, tx: Tx, period: str) -> SatisfactionReport:
    """The report of `period` (YYYY-MM), with changes since the month before. Raises BadPeriod."""
    if _PERIOD.fullmatch(period) is None or read_period(period) != period:
        raise BadPeriod(period)
    previous = previous_period(period)
    figures = await tx.reports.figures(period)
    before = await tx.reports.figures(previous)
    return build(figures, before, app.profile.platforms, indicators(app))
