"""`gigunion report satisfaction` through real processes: HTML with real PNG charts inside, Markdown
and CSV, a small company shown as "<5", and the exit codes for a wrong month, an empty one and a
file that cannot be written."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from bot.config import Settings
from bot.runtime import running_bot
from tests.conftest import gigunion_env
from tests.test_satisfaction_report import A, B, C, add

HERE = Path(__file__).resolve().parent.parent
SECRET = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def gigunion(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=gigunion_env(tmp_path, secret_key=SECRET),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )


def seed(tmp_path: Path) -> None:
    """November: 20 reviews of A (rated 2 before, 4 now), 4 of B, 8 of C; October: 10 of A."""

    async def go() -> None:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}", secret_key=SECRET, home=str(tmp_path)
        )
        async with running_bot(settings, run_jobs=False) as (app, _):
            await add(app, 10, A, period="2026-10", score=2)
            await add(app, 20, A, score=4, days=3, closed=True)
            await add(app, 4, B, score=1)
            await add(app, 8, C, score=3)

    asyncio.run(go())


def test_html_with_real_charts_md_and_csv(tmp_path: Path) -> None:
    seed(tmp_path)
    html_path, md_path, csv_path = tmp_path / "report.html", tmp_path / "report.md", tmp_path / "r.csv"

    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(html_path))
    assert done.returncode == 0, done.stderr
    assert "32" in done.stdout and str(html_path) in done.stdout
    html = html_path.read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>") and "职工满意度情况通报" in html
    pictures = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pictures) == 2  # the overall and A: B is "<5", C withheld with it
    for data in pictures:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.format == "PNG" and image.width > 300 and image.height > 100
    assert "&lt;5" in html and "不公布" in html and "+2.00" in html

    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(md_path), "--lang", "en")
    assert done.returncode == 0, done.stderr
    md = md_path.read_text("utf-8")
    assert md.startswith("# ") and "| 1 | Labour relations | 20 | 0 | 0 | 0 | 20 | 0 | 4.00 | +2.00 |" in md

    done = gigunion(
        tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(csv_path), "--format", "csv"
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(csv_path.read_text("utf-8-sig"))))
    assert rows[0] == ["统计期", "单位", "指标", "项目", "数值"]
    values = {(r[1], r[2], r[3]): r[4] for r in rows[1:]}
    assert values[("全部", "", "点评条数")] == "32"
    assert values[(A, "劳动关系", "平均分")] == "4.00"
    assert values[(A, "劳动关系", "比上期")] == "+2.00"
    assert values[(B, "", "点评条数")] == "<5"
    assert values[(C, "", "点评条数")] == "不公布"
    assert not [k for k in values if k[0] in (B, C) and k[2] != "点评条数"]  # nothing else of them

    # --format wins over the file's ending
    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(tmp_path / "x.txt"))
    assert done.returncode == 0 and (tmp_path / "x.txt").read_text("utf-8").startswith("<!DOCTYPE html>")


def test_wrong_input(tmp_path: Path) -> None:
    seed(tmp_path)
    out = tmp_path / "r.html"
    for bad in ("2026-13", "11/2026", "last month", "2026-11-01"):
        done = gigunion(tmp_path, "report", "satisfaction", "--period", bad, "--out", str(out))
        assert done.returncode == 2, (bad, done.stderr)
        assert "YYYY-MM" in done.stderr and "Traceback" not in done.stderr
    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(out), "--format", "pdf")
    assert done.returncode == 2
    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(out), "--lang", "fr")
    assert done.returncode == 2

    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2025-11", "--out", str(out))
    assert done.returncode == 1 and "no reviews in 2025-11" in done.stderr
    assert not out.exists()

    for unwritable in (tmp_path / "missing-folder" / "r.html", tmp_path):
        done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(unwritable))
        assert done.returncode == 2, done.stderr
        assert str(unwritable) in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_no_database_is_exit_3(tmp_path: Path) -> None:
    done = gigunion(tmp_path, "report", "satisfaction", "--period", "2026-11", "--out", str(tmp_path / "r.html"))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
