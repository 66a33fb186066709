"""How long the monthly satisfaction report takes on a year of reviews, and how much memory it needs.

Makes a database with the migrations, then fills it straight through sqlite3 (executemany, one
transaction; the bench only: the bot writes reviews one by one through bot.services.complaints) with
REVIEWS synthetic reviews across the 10 companies of the default profile (plus the union's own service
and "other") and 12 months, each rated on every indicator. Then, in a fresh process (so that nothing,
matplotlib least of all, is imported before the clock starts, and so that its peak memory is the
report's alone), it times one month's report: the queries (that month and the one before), the model
with its suppression, and the HTML with its charts; and prints the seconds of each part and the peak
resident memory of that process (resource.getrusage ru_maxrss: the whole process, Python and
SQLAlchemy included). Target: under 5 s and under 500 MB.

    python bench/report.py                          # 1,000,000 reviews, the report of 2026-11
    python bench/report.py --reviews 100000 --period 2026-06
    python bench/report.py --db /tmp/reviews.db     # keep (or reuse) the filled database
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MONTHS = tuple(f"2026-{m:02d}" for m in range(1, 13))
INDICATORS = ("labour_relations", "pay", "safety", "democratic_management", "union_service")
CATEGORIES = ("pay", "hours", "safety", "platform_rules", "insurance", "discrimination", "union_service", "other")
SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def companies() -> tuple[str, ...]:
    from bot.config import default_profile

    return default_profile().platforms


def rows(n: int, seed: int = 12) -> Iterator[tuple[tuple, list[tuple]]]:
    """(review row, its score rows), with each company's scores leaning its own way."""
    rng = random.Random(seed)
    names = companies()
    lean = {c: rng.uniform(-1.0, 1.0) for c in names}
    for _ in range(n):
        review_id = os.urandom(12).hex()
        period = rng.choice(MONTHS)
        pick = rng.random()
        if pick < 0.9:
            kind, target = "company", rng.choice(names)
        else:
            kind, target = ("union", None) if pick < 0.95 else ("other", None)
        answered = rng.random() < 0.7
        days = rng.randrange(0, 30) if answered else None
        closed = answered and rng.random() < 0.6
        review = (review_id, period, kind, target, rng.choice(CATEGORIES), days, closed)
        base = 3.0 + lean.get(target or "", 0.0)
        scores = [(review_id, i, period, target, min(5, max(1, round(rng.gauss(base, 1.1))))) for i in INDICATORS]
        yield review, scores


def fill(path: Path, n: int) -> float:
    from storage import Database, migrate

    async def make() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate.upgrade(db)
        finally:
            await db.close()

    asyncio.run(make())
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    batch_reviews: list[tuple] = []
    batch_scores: list[tuple] = []
    for review, scores in rows(n):
        batch_reviews.append(review)
        batch_scores.extend(scores)
        if len(batch_reviews) >= 50_000:
            _flush(conn, batch_reviews, batch_scores)
    _flush(conn, batch_reviews, batch_scores)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def _flush(conn: sqlite3.Connection, reviews: list[tuple], scores: list[tuple]) -> None:
    conn.executemany(
        "INSERT INTO reviews (id, period, target_kind, target, category, first_answer_days, closed) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        reviews,
    )
    conn.executemany(
        "INSERT INTO review_scores (review_id, indicator, period, target, score) VALUES (?, ?, ?, ?, ?)", scores
    )
    reviews.clear()
    scores.clear()


def report_once(path: Path, period: str) -> None:
    """In the child process: one report, timed part by part; prints one line of figures."""
    import resource
    from datetime import date

    from bot.config import Settings
    from bot.engine.context import BotContext
    from bot.locale import Locale
    from bot.services import satisfaction
    from bot.services.report_render import render_html
    from storage import Database

    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", secret_key=SECRET, home=str(path.parent))

    async def figures() -> tuple:
        db = Database(settings.database_url, group_commit=False)
        try:
            async with db.transaction() as tx:
                return await tx.reports.figures(period), await tx.reports.figures(satisfaction.previous_period(period))
        finally:
            await db.close()

    locale = Locale()
    assert "matplotlib" not in sys.modules
    t0 = time.perf_counter()
    now, before = asyncio.run(figures())
    t1 = time.perf_counter()
    ids = satisfaction.indicators(BotContext(settings=settings, db=None, keyring=None, locale=locale, flows={}))
    report = satisfaction.build(now, before, settings.profile.platforms, ids)
    t2 = time.perf_counter()
    html = render_html(report, locale, "zh_CN", settings.profile.name("zh_CN"), date(2026, 12, 1))
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    charts = html.count(b"data:image/png;base64,")
    print(
        f"{period}: {now.reviews} reviews ({before.reviews} the month before), {len(report.groups)} groups, "
        f"{charts} charts, {len(html) / 1024:.0f} KB of HTML\n"
        f"  query {t1 - t0:.2f} s + model {t2 - t1:.3f} s + render {t3 - t2:.2f} s (matplotlib imported in it) "
        f"= {t3 - t0:.2f} s; peak memory {peak:.0f} MB (ru_maxrss of the report process)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--period", default="2026-11")
    parser.add_argument("--db", type=Path, help="the database file (made and filled unless it exists)")
    parser.add_argument("--report-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_only:
        report_once(args.db, args.period)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = args.db or Path(folder) / "reviews.db"
        if not path.exists():
            took = fill(path, args.reviews)
            print(
                f"filled {args.reviews:,} reviews ({args.reviews * len(INDICATORS):,} scores) in {took:.1f} s; "
                f"database {path.stat().st_size / 1024 / 1024:.0f} MB"
            )
        subprocess.run(
            [sys.executable, __file__, "--report-only", "--db", str(path), "--period", args.period], check=True
        )


if __name__ == "__main__":
    main()
