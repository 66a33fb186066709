"""The whole cycle through `gigunion` processes, as a rider and a staffer would go through it: a
complaint sent in `gigunion console`, followed up in a new console session with 查询进度 and the code,
answered with `gigunion complaints reply`, and the reply read and answered by the worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import gigunion_env

GIGUNION = [sys.executable, "-m", "bot"]
RECEIPT = re.compile(r"\d{4} \d{4} \d{4} \d{4}")
TEXT = "配送站点每单扣我两块钱的“装备费”"


def gigunion(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GIGUNION, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_submit_follow_up_reply_and_answer_through_the_console(tmp_path: Path) -> None:
    env = gigunion_env(tmp_path)
    # intro: 1 start; target typed; 1 the first category; 7 no ratings; the text; 1 no pictures; 1 send.
    sent = gigunion(env, "console", "--user", "rider", stdin=f"投诉\n1\n美团\n1\n7\n{TEXT}\n1\n1\n")
    assert sent.returncode == 0, sent.stderr
    assert "只显示这一次" in sent.stdout
    [code] = RECEIPT.findall(sent.stdout)

    first = gigunion(env, "console", "--user", "rider", stdin=f"查询进度\n{code}\n")
    assert first.returncode == 0, first.stderr
    assert "状态：已收到，等待处理" in first.stdout and "工会还没有回复" in first.stdout

    listed = gigunion(env, "complaints", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["status"], row["target"]) == ("new", "美团")
    reply = gigunion(env, "complaints", "reply", row["id"], "--text", "已约谈站点负责人，扣的钱会退回。")
    assert reply.returncode == 0, reply.stderr

    # The rider, in a new session, reads the reply and answers it (1: add information / reply).
    follow = gigunion(env, "console", "--user", "rider", "--json", stdin=f"查询进度\n{code}\n1\n收到了，谢谢工会\n2\n")
    assert follow.returncode == 0, follow.stderr
    texts = [json.loads(line)["text"] for line in follow.stdout.splitlines() if "text" in json.loads(line)]
    assert any("状态：工会已答复" in m and "工会回复：\n已约谈站点负责人，扣的钱会退回。" in m for m in texts)
    assert any("收到，已经转给工会" in m for m in texts)

    shown = json.loads(gigunion(env, "complaints", "show", row["id"], "--json").stdout)
    assert [(m["author"], m["text"]) for m in shown["thread"]] == [
        ("union", "已约谈站点负责人，扣的钱会退回。"),
        ("worker", "收到了，谢谢工会"),
    ]
    assert shown["description"] == TEXT
    # Nobody else can follow it up with a wrong code, and the staff see no one behind it.
    other = gigunion(env, "console", "--user", "someone", stdin="查询进度\n1234 5678 1234 5678\n")
    assert "没找到这个回执码" in other.stdout
    assert "rider" not in json.dumps(shown, ensure_ascii=False)
