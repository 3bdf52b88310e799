"""The web app's CSRF key and tokens, and the [web] configuration."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from gateway.config import load_config, web_secret_key_file, web_tls
from gateway.errors import ConfigError
from gateway.web.security import CsrfTokens, cross_site_refused, load_or_create_key


def test_the_key_is_created_once_private(tmp_path: Path) -> None:
    path = tmp_path / "run" / "web-secret.key"
    key = load_or_create_key(path)
    assert len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["web-secret.key"]  # no temporary file left


def _create(path: str, queue: multiprocessing.Queue[bytes]) -> None:
    queue.put(load_or_create_key(Path(path)))


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "web-secret.key"
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bytes] = context.Queue()
    workers = [context.Process(target=_create, args=(str(path), queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    keys = {queue.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    assert keys == {path.read_bytes().strip()}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"short\n", "holds fewer than 16 bytes"), (None, "cannot read")],
)
def test_an_unusable_key_file_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "key"
    if content is None:
        path.mkdir()  # a directory where the key should be
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_or_create_key(path)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("config: web.secret_key_file:")


def test_a_key_cannot_be_created_where_there_is_no_directory(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")  # runs as root in CI, so a read-only directory would not stop it
    with pytest.raises(ConfigError, match="cannot create"):
        load_or_create_key(tmp_path / "a-file" / "key")


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_bind_person_form_and_time() -> None:
    clock = _Clock()
    tokens = CsrfTokens(b"k" * 32, clock=clock)
    token = tokens.make("SE-P1", "/cases/C1/actions/ANSWER")
    assert tokens.check(token, "SE-P1", "/cases/C1/actions/ANSWER") is None
    assert (
        tokens.check(token, "SE-P2", "/cases/C1/actions/ANSWER")
        == "CSRF token does not match this person and form"
    )
    assert tokens.check(token, "SE-P1", "/cases/C1/actions/CLOSED") is not None
    assert CsrfTokens(b"x" * 32, clock=clock).check(token, "SE-P1", "/cases/C1/actions/ANSWER") is not None
    clock.now += 12 * 3600 - 1
    assert tokens.check(token, "SE-P1", "/cases/C1/actions/ANSWER") is None
    clock.now += 2
    assert tokens.check(token, "SE-P1", "/cases/C1/actions/ANSWER") == "CSRF token expired"
    future = CsrfTokens(b"k" * 32, clock=lambda: clock.now + 3600).make("SE-P1", "/f")
    assert tokens.check(future, "SE-P1", "/f") == "CSRF token from the future"
    for bad in (None, "", ".", "abc.def", "1" * 20 + ".x"):
        assert tokens.check(bad, "SE-P1", "/f") is not None


@pytest.mark.parametrize(
    ("method", "headers", "page", "refused"),
    [
        ("POST", {}, True, False),  # a browser without fetch metadata: the token decides
        ("POST", {"Sec-Fetch-Site": "same-origin"}, True, False),
        ("POST", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, True, True),
        ("GET", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, True, False),
        ("GET", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, False, True),
        (
            "GET",
            {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
            True,
            True,
        ),
        ("GET", {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, True, False),
        ("GET", {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, False, False),
    ],
)
def test_fetch_metadata_rule(method: str, headers: dict[str, str], page: bool, refused: bool) -> None:
    assert cross_site_refused(method, headers, page=page) is refused


# -- [web] configuration ------------------------------------------------------------------------------------
def test_web_defaults(tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text('[tls]\ntrust_store = "ca.pem"\ncrl = "crl.pem"\n')
    config = load_config(tmp_path / "gw.toml", env={})
    assert config.web.bind == "0.0.0.0:8444"
    assert config.web.public_url == "https://localhost:8444"
    tls = web_tls(config)
    assert (tls.trust_store, tls.crl) == (tmp_path / "ca.pem", tmp_path / "crl.pem")  # the [tls] ones
    assert tls.certificate == config.tls.certificate
    assert web_secret_key_file(config) == tmp_path / "var" / "run" / "web-secret.key"


def test_a_people_ca_of_its_own_brings_its_own_crl(tmp_path: Path) -> None:
    text = '[tls]\ntrust_store = "ca.pem"\ncrl = "crl.pem"\n[web]\ntrust_store = "people-ca.pem"\n'
    (tmp_path / "gw.toml").write_text(text)
    tls = web_tls(load_config(tmp_path / "gw.toml", env={}))
    assert (tls.trust_store, tls.crl) == (tmp_path / "people-ca.pem", None)
    (tmp_path / "gw.toml").write_text(text + 'crl = "people-crl.pem"\nsecret_key_file = "k"\n')
    config = load_config(tmp_path / "gw.toml", env={"GATEWAY_WEB_BIND": "127.0.0.1:9444"})
    assert web_tls(config).crl == tmp_path / "people-crl.pem"
    assert web_secret_key_file(config) == tmp_path / "k"
    assert config.web.bind == "127.0.0.1:9444"
    assert "secret_key_file" not in repr(config.web)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[web]\nbind = '8444'\n", "config: web.bind: expected HOST:PORT"),
        ("[web]\npublic_url = 'localhost:8444'\n", r"config: web.public_url: expected an http\(s\) URL"),
        ("[web]\nmax_body_bytes = 10\n", "config: web.max_body_bytes: must be at least 1024"),
        ("[web]\nsecret = 'x'\n", "config: unknown key web.secret"),
    ],
)
def test_web_mistakes_are_one_line(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "gw.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "gw.toml", env={})
