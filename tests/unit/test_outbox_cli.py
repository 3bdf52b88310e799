"""`gateway outbox …`: status, list, show (never the payload), retry, skip and purge, all audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import migrate
from gateway.cli import main
from gateway.db import make_engine
from outbox import Delivery, Kind, NewMessage, OutboxStore, enqueue, now_ms
from outbox.store import outbox_audit


@pytest.fixture
def gw(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, code: int = 0) -> str:
        capsys.readouterr()
        assert main(list(argv)) == code
        out = capsys.readouterr()
        return out.out + out.err

    return run


def test_operator_session(gw, db_url: str) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(db_url, pool_size=1)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        ids = [
            enqueue(
                conn,
                NewMessage(
                    "case-1", "RegisterCase", "dev-a", "SE1", b"<secret>191212121212</secret>", "c", f"k{i}"
                ),
                now_ms(),
            )
            for i in range(2)
        ]
    store = OutboxStore(engine)
    store.complete(store.claim("w", 1)[0], Delivery(Kind.PERMANENT, "SOAP fault Client", 500), "w", now_ms())

    status = json.loads(gw("outbox", "status", "--json"))
    assert status["totals"] == {"dead": 2}
    assert status["destinations"]["dev-a"] == {"dead": 2}
    dead = gw("outbox", "list", "--status", "dead")
    assert "SOAP fault Client" in dead
    assert "blocked: message" in dead
    shown = gw("outbox", "show", str(ids[0]))
    assert "191212121212" not in shown
    assert "payload_bytes: 29" in shown
    assert "attempt 1" in shown
    assert "permanent" in shown

    assert gw("outbox", "retry", str(ids[0]), "--author", "anna").startswith("2 message(s) queued again")
    assert json.loads(gw("outbox", "status", "--json"))["totals"] == {"pending": 2}
    assert "exactly one of" in gw("outbox", "retry", code=1)
    gw("outbox", "skip", str(ids[0]), "-m", "answered by phone", "--author", "anna")
    claimed = store.claim("w", 5)
    assert [c.id for c in claimed] == [ids[1]]
    store.complete(claimed[0], Delivery(Kind.SUCCESS, "OK"), "w", now_ms())
    assert gw("outbox", "purge", "--done-older-than", "0s").startswith("1 delivered message(s) purged")
    assert "duration like" in gw("outbox", "purge", "--done-older-than", "soon", code=1)
    with engine.connect() as conn:
        audit = [(r.actor, r.action) for r in conn.execute(select(outbox_audit).order_by(outbox_audit.c.id))]
    engine.dispose()
    assert audit == [("anna", "retry"), ("anna", "skip"), ("operator", "purge")]
