"""Shared pytest fixtures: the golden fixture root (MIBENCH_FIXTURES_DIR) and scratch folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def fixtures_root() -> Path:
    """MIBENCH_FIXTURES_DIR, default tests/fixtures (a copy of ../shared/fixtures)."""
    return Path(os.environ.get("MIBENCH_FIXTURES_DIR", TESTS / "fixtures"))


def fixture_set(name: str) -> Path:
    """One port's fixture set (musicinfuser, videollama2, mmdiffusion); fails loudly when absent."""
    path = fixtures_root() / name
    if not (path / "README.md").is_file():
        pytest.fail(f"fixture set {path} is missing (set MIBENCH_FIXTURES_DIR)")
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing may reach a model hub during tests."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
