"""`gateway outbox …`: status, list, show (never the payload), retry, skip and purge, all audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import migrate
from gateway.cli import main
from gateway.db import make_engine
from outbox import BreakerPolicy, Delivery, Kind, NewMessage, OutboxStore, enqueue, now_ms
from outbox.schema import outbox_message
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

    assert gw("outbox", "retry", str(ids[0]), "--author", "anna").startswith("2 message(s) due now: ")
    assert json.loads(gw("outbox", "status", "--json"))["totals"] == {"pending": 2}
    assert "exactly one of" in gw("outbox", "retry", code=2)
    gw("outbox", "skip", str(ids[0]), "-m", "answered by phone", "--author", "anna")
    claimed = store.claim("w", 5)
    assert [c.id for c in claimed] == [ids[1]]
    store.complete(claimed[0], Delivery(Kind.SUCCESS, "OK"), "w", now_ms())
    assert gw("outbox", "purge", "--done-older-than", "0s").startswith("1 delivered message(s) purged")
    assert "duration like" in gw("outbox", "purge", "--done-older-than", "soon", code=2)
    with engine.connect() as conn:
        audit = [(r.actor, r.action) for r in conn.execute(select(outbox_audit).order_by(outbox_audit.c.id))]
    engine.dispose()
    assert audit == [("anna", "retry"), ("anna", "skip"), ("operator", "purge")]


def _message(engine, stream: str, destination: str = "dev-a", key: str | None = None) -> int:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return enqueue(
            conn,
            NewMessage(
                stream, "RegisterCase", destination, "SE1", b"<x/>", "c", key or f"{stream}-{now_ms()}"
            ),
            now_ms(),
        )


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url, pool_size=2)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _row(engine, mid: int):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(outbox_message).where(outbox_message.c.id == mid)).one()


def test_retry_makes_a_message_waiting_out_its_backoff_due_now(gw, engine) -> None:  # type: ignore[no-untyped-def]
    mid = _message(engine, "case-b")
    store = OutboxStore(engine)
    store.complete(store.claim("w", 1)[0], Delivery(Kind.TRANSIENT, "HTTP 503", 503, 600_000), "w", now_ms())
    assert _row(engine, mid).next_attempt_ms > now_ms() + 100_000
    assert store.claim("w", 1) == []  # waiting out its backoff

    data = json.loads(gw("outbox", "retry", str(mid), "--json", "--author", "anna"))

    assert data == {
        "action": "retry",
        "count": 1,
        "messages": [{"id": mid, "was": "pending"}],
        "openBreakers": [],
    }
    row = _row(engine, mid)
    assert row.status == "pending"
    assert row.next_attempt_ms <= now_ms()
    assert row.attempts == 1  # its history is kept
    assert [c.id for c in store.claim("w", 1)] == [mid]
    with engine.connect() as conn:
        audit = conn.execute(select(outbox_audit)).one()
    assert (audit.actor, audit.action, audit.target) == ("anna", "retry", f"message {mid}")
    assert audit.detail == "1 message(s) due now"


def test_retry_names_an_open_breaker_that_still_holds_the_message(gw, engine) -> None:  # type: ignore[no-untyped-def]
    store = OutboxStore(engine, breaker=BreakerPolicy(threshold=1, open_ms=600_000, max_open_ms=600_000))
    mid = _message(engine, "case-c", "dev-down")
    store.complete(store.claim("w", 1)[0], Delivery(Kind.TRANSIENT, "connection failed"), "w", now_ms())
    text = gw("outbox", "retry", "--case", "case-c")
    assert text.startswith(f"1 message(s) due now: {mid} (before: 1 pending)")
    assert "breaker of dev-down is open" in text
    assert "gateway outbox retry --destination dev-down` closes it" in text
    data = json.loads(gw("outbox", "retry", "--destination", "dev-down", "--json"))
    assert data["count"] == 1
    assert data["openBreakers"] == []  # retrying the destination closed its breaker
    assert json.loads(gw("outbox", "status", "--json"))["breakers"] == []


# Each row: how the messages stand, the command, the line it prints (exit code 3, nothing changed).
NOTHING_MATCHED = [
    ("unknown id", ["retry", "999999"], "gateway: no message 999999"),
    ("delivered", ["retry", "{done}"], "gateway: message {done} was delivered (done); nothing to retry"),
    (
        "in flight",
        ["retry", "{inflight}"],
        "gateway: message {inflight} is being delivered now (inflight); nothing to retry",
    ),
    (
        "empty case",
        ["retry", "--case", "no-such-case"],
        "gateway: case no-such-case has no dead, skipped or pending message to retry",
    ),
    (
        "case all delivered",
        ["retry", "--case", "case-done"],
        "gateway: case case-done has no dead, skipped or pending message to retry",
    ),
    (
        "empty destination",
        ["retry", "--destination", "nowhere"],
        "gateway: destination nowhere has no dead or pending message to retry",
    ),
    ("skip unknown", ["skip", "999999"], "gateway: no message 999999"),
    (
        "skip delivered",
        ["skip", "{done}"],
        "gateway: message {done} was delivered (done); only pending or dead messages can be skipped",
    ),
    (
        "skip skipped",
        ["skip", "{skipped}"],
        "gateway: message {skipped} is skipped (skipped); only pending or dead messages can be skipped",
    ),
    (
        "skip in flight",
        ["skip", "{inflight}"],
        "gateway: message {inflight} is being delivered now (inflight); only pending or dead messages can "
        "be skipped",
    ),
    ("show unknown", ["show", "999999"], "gateway: no message 999999"),
]


@pytest.mark.parametrize(("case", "argv", "line"), NOTHING_MATCHED, ids=[r[0] for r in NOTHING_MATCHED])
def test_retry_and_skip_that_match_nothing_exit_3_with_one_line(  # type: ignore[no-untyped-def]
    gw, engine, case: str, argv: list[str], line: str
) -> None:
    store = OutboxStore(engine)
    done = _message(engine, "case-done")
    store.complete(store.claim("w", 1)[0], Delivery(Kind.SUCCESS, "OK"), "w", now_ms())
    skipped = _message(engine, "case-skipped")
    store.skip("op", skipped)
    inflight = _message(engine, "case-inflight")
    assert [c.id for c in store.claim("w", 1)] == [inflight]
    ids = {"done": done, "skipped": skipped, "inflight": inflight}
    with engine.connect() as conn:
        before = conn.execute(select(outbox_message).order_by(outbox_message.c.id)).all()
        audits = len(conn.execute(select(outbox_audit)).all())

    out = gw("outbox", *[a.format(**ids) for a in argv], code=3)

    assert out == line.format(**ids) + "\n"
    with engine.connect() as conn:
        assert conn.execute(select(outbox_message).order_by(outbox_message.c.id)).all() == before
        assert len(conn.execute(select(outbox_audit)).all()) == audits  # nothing changed, nothing audited


def test_skip_and_purge_print_what_changed_as_json(gw, engine) -> None:  # type: ignore[no-untyped-def]
    store = OutboxStore(engine)
    first = _message(engine, "case-j", key="j1")
    second = _message(engine, "case-j", key="j2")
    store.complete(store.claim("w", 1)[0], Delivery(Kind.PERMANENT, "SOAP fault Client", 500), "w", now_ms())
    assert _row(engine, second).status == "dead"  # held back behind the dead one

    assert json.loads(gw("outbox", "skip", str(first), "--json", "-m", "by phone")) == {
        "action": "skip",
        "id": first,
        "released": [second],
    }
    assert gw("outbox", "skip", str(second)) == f"message {second} skipped\n"
    assert json.loads(gw("outbox", "retry", str(second), "--json"))["messages"] == [
        {"id": second, "was": "skipped"}
    ]
    store.complete(store.claim("w", 1)[0], Delivery(Kind.SUCCESS, "OK"), "w", now_ms())
    assert json.loads(gw("outbox", "purge", "--done-older-than", "0s", "--json")) == {
        "action": "purge",
        "count": 1,
    }
