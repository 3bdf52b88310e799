"""Request framing in the event loop: where a request ends, what is refused, whatever the pieces' sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.framing import Framing, RequestFramer

HEAD = b"POST /rc HTTP/1.1\r\nHost: localhost\r\n"
PIPELINED = b"GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n"

# (name, request bytes, expected framing, expected refusal status or None)
CASES = [
    ("no body", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Framing.NONE, None),
    ("length", HEAD + b"Content-Length: 5\r\n\r\nhello", Framing.LENGTH, None),
    ("length zero", HEAD + b"Content-Length: 0\r\n\r\n", Framing.NONE, None),
    (
        "repeated equal lengths",
        HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        Framing.LENGTH,
        None,
    ),
    ("chunked", HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Framing.CHUNKED, None),
    (
        "chunked with extension and trailer",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        Framing.CHUNKED,
        None,
    ),
    ("leading blank line", b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", Framing.NONE, None),
    ("length and chunked", HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", None, 400),
    ("two lengths", HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", None, 400),
    ("negative length", HEAD + b"Content-Length: -5\r\n\r\n", None, 400),
    ("gzip coding", HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n", None, 501),
    ("bad chunk size", HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", None, 400),
    ("chunk without its CRLF", HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabXY", None, 400),
    ("announced too large", HEAD + b"Content-Length: 2000\r\n\r\n", None, 413),
    ("chunk too large", HEAD + b"Transfer-Encoding: chunked\r\n\r\n7d0\r\n", None, 413),
    ("not HTTP/1", b"GET / SPDY/3\r\n\r\n", None, 400),
    ("header without colon", HEAD + b"Broken\r\n\r\n", None, 400),
    ("space before colon", HEAD + b"Content-Length : 5\r\n\r\nhello", None, 400),
]


def _frame(data: bytes, pieces: list[int]) -> tuple[RequestFramer, int, int | None]:
    """Feed ``data`` cut at ``pieces``; the framer, bytes used and the refusal status if any."""
    framer = RequestFramer(max_head=4096, max_body=1000)
    used = 0
    start = 0
    for cut in [*sorted(set(pieces)), len(data)]:
        if cut <= start:
            continue
        taken, verdict = framer.feed(data[start:cut])
        used += taken
        if verdict is not None:
            return framer, used, verdict.status
        if framer.complete:
            return framer, used, None
        start = cut
    return framer, used, None


@pytest.mark.parametrize(("name", "data", "framing", "status"), CASES, ids=[c[0] for c in CASES])
def test_framing_whole(name: str, data: bytes, framing: Framing | None, status: int | None) -> None:
    framer, used, refused = _frame(data + PIPELINED, [])
    assert refused == status, name
    if status is None:
        assert framer.complete, name
        assert framer.framing is framing, name
        assert used == len(data), name  # the pipelined request is not taken


@given(st.lists(st.integers(min_value=1, max_value=200), max_size=12), st.sampled_from(CASES))
def test_framing_is_the_same_in_any_pieces(
    cuts: list[int], case: tuple[str, bytes, Framing | None, int | None]
) -> None:
    name, data, _framing, status = case
    whole = data + PIPELINED
    framer, used, refused = _frame(whole, [c for c in cuts if c < len(whole)])
    assert refused == status, name
    if status is None:
        assert framer.complete, name
        assert used == len(data), name


def test_head_too_large_without_an_end() -> None:
    framer = RequestFramer(max_head=100, max_body=10)
    _used, verdict = framer.feed(b"GET /" + b"a" * 200)
    assert verdict is not None
    assert verdict.status == 431


def test_expect_continue_is_seen() -> None:
    framer = RequestFramer(max_head=4096, max_body=100)
    framer.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert framer.head_complete
    assert framer.expects_continue
    assert not framer.complete
    used, verdict = framer.feed(b"abc")
    assert verdict is None
    assert used == 3
    assert framer.complete
