"""`gateway outbox status|list|show` show quarantined messages: their deaths, and their next try."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import migrate
from gateway.cli import main
from gateway.db import make_engine
from outbox import NewMessage, OutboxStore, enqueue

NOW = 1_700_000_000_000


class Clock:
    now = NOW

    def __call__(self) -> int:
        return self.now


def test_quarantined_messages_are_shown(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    engine = make_engine(db_url, pool_size=1)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        mid = enqueue(conn, NewMessage("case-q", "RegisterCase", "dev-a", "SE1", b"<x/>", "c", "kq"), NOW)
    clock = Clock()
    store = OutboxStore(engine, lease_ms=10_000, clock=clock)
    for owner in ("w1", "w2"):  # claimed, then its worker died twice
        assert [c.id for c in store.claim(owner, 5)] == [mid]
        clock.now += 10_001
        store.reap()
    engine.dispose()

    def run(*argv: str) -> str:
        capsys.readouterr()
        assert main(list(argv)) == 0
        return capsys.readouterr().out

    text = run("outbox", "status")
    assert "quarantined: 1 message(s) whose worker died with them in flight" in text
    assert f"{mid:>8} case case-q #1 to dev-a: 2 death(s) in a row, 1 alone" in text
    data = json.loads(run("outbox", "status", "--json"))
    assert data["quarantine"]["count"] == 1
    assert data["quarantine"]["messages"][0]["deaths"] == 2
    listed = run("outbox", "list")
    assert "quarantined (deaths=2, alone=1)" in listed
    assert "in flight alone" in listed  # the last error names how it died
    shown = json.loads(run("outbox", "show", str(mid), "--json"))
    assert shown["quarantined"] is True
    assert shown["quarantined_since"] == "2023-11-14T22:13:30Z"
    assert [a["outcome"] for a in shown["attempt_log"]] == ["lease-lost", "lease-lost"]
