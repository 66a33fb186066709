"""Tencent's published WeChat encryption samples, from ../shared/testdata beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

VECTORS_FILE = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "wechat_vectors.json"


def official_vectors() -> dict:
    """The samples; the calling test (or module) is skipped, saying why, when they are not there."""
    if not VECTORS_FILE.exists():
        pytest.skip(f"the official WeChat samples are not at {VECTORS_FILE}", allow_module_level=True)
    return json.loads(VECTORS_FILE.read_text("utf-8"))
