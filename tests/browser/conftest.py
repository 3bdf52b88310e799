"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, axe-core from npm, and a real
gateway (``gateway serve``: SOAP, delivery worker, operations) with the web listener on the same database,
1177's case service played by a scripted receiver, and personal certificates from the test run's demo CA.

Skipped with a reason when /usr/bin/chromium or node is missing (CI installs both: ``.ci/run``). The web
listener is ``gateway serve``'s own once it starts ``[web]``; until then ``tests.browser.webserver`` serves
``web_listener_app`` on the same configuration with real gunicorn and mutual TLS.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.certs import ExamplePki
from tests.browser.people import person_certificate
from tests.integration.harness import ROOT, GatewayProcess, free_port
from tests.integration.receivers import ReceiverProcess, catalogue_for

CHROMIUM = Path("/usr/bin/chromium")
#: the axe-core release the accessibility checks run (CI: npm install --prefix tests/browser axe-core@...)
AXE_VERSION = "4.14.1"
BROWSER_DIR = Path(__file__).resolve().parent
AXE_SCRIPT = BROWSER_DIR / "node_modules" / "axe-core" / "axe.min.js"
DESK_UNIT = "SE2321000016-9K2M"
OTHER_UNIT = "SE2321000016-7Q6X"
CARE_PROVIDER = "SE2321000016-VG01"
HANDLER = "SE2321000016-HND1"  # the demo handler certificate of `gateway certs example`
HANDLER2 = "SE2321000016-HND2"
READER = "SE2321000016-RDR1"
OTHER = "SE2321000016-OTH1"
NO_HSA_ID = "no-serial"  # a certificate of the demo CA without serialNumber
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
CORPUS = ROOT / "tests" / "data" / "web" / "hostile-texts.txt"
pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return "browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "browser tests need node and npm for axe-core (apt-get install -y nodejs npm)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("GATEWAY_TEST_REQUIRE_BROWSER"):  # CI (.ci/run) installs them: fail, never skip
        raise pytest.UsageError(reason)
    for item in items:
        if BROWSER_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe.min.js of AXE_VERSION, installed into tests/browser/node_modules (gitignored) when absent."""
    package = AXE_SCRIPT.parent / "package.json"
    if not (AXE_SCRIPT.exists() and json.loads(package.read_text()).get("version") == AXE_VERSION):
        command = [
            "npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(BROWSER_DIR),
            f"axe-core@{AXE_VERSION}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not AXE_SCRIPT.exists():
            pytest.fail(f"could not install axe-core {AXE_VERSION} with npm: {done.stderr.strip()[-300:]}")
    return AXE_SCRIPT


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--lang=sv-SE"]
        )
        yield launched
        launched.close()


@dataclass
class Desk:
    """The running system of one test module, and who may sign in to it."""

    web_url: str
    gateway: GatewayProcess
    receiver: ReceiverProcess
    people: dict[str, tuple[Path, Path]]
    workdir: Path
    cases: list[str] = field(default_factory=list)

    def context(self, browser: Any, who: str, **options: Any) -> Any:
        cert, key = self.people[who]
        return browser.new_context(
            client_certificates=[{"origin": self.web_url, "certPath": str(cert), "keyPath": str(key)}],
            ignore_https_errors=True,  # the demo CA is not in Chromium's store; the server still checks ours
            locale="sv-SE",
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
            **options,
        )

    def register(self, pki: ExamplePki, case_id: str, **changes: Any) -> None:
        from gateway.soap.client import ClientTls, SoapClient, as_dict

        payload = register_payload(case_id, **changes)
        ident = pki.clients["1177"]
        client = SoapClient(self.gateway.url, ClientTls(pki.ca_cert, ident.cert, ident.key), timeout=20)
        result = as_dict(client.call("RegisterCase", DESK_UNIT, payload))["result"]
        assert result["resultCode"] == "OK", result
        self.cases.append(case_id)


def register_payload(
    case_id: str, description: str | None = None, attachment: tuple[str, str, bytes] | None = None,
    category: str = "COMPLAINT",
) -> etree._Element:  # fmt: skip
    root = etree.parse(str(ROOT / "examples" / "register-case.xml")).getroot()
    values = {
        "caseId": case_id,
        "unitId": DESK_UNIT,
        "unitName": "Vårdcentralen Desk",
        "caseCategory": category,
    }
    if description is not None:
        values["description"] = description
    for name, value in values.items():
        found = root.find(f".//{{*}}{name}")
        assert found is not None, name
        found.text = value
    if attachment is not None:
        ns = etree.QName(root).namespace
        core = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:1"
        element = etree.SubElement(root, f"{{{ns}}}attachment")
        name, mime, data = attachment
        for tag, text in (("attachmentId", "a1"), ("fileName", name), ("mimeType", mime)):
            etree.SubElement(element, f"{{{core}}}{tag}").text = text
        etree.SubElement(element, f"{{{core}}}data").text = base64.b64encode(data).decode()
    return root


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _grant(db_url: str, grants: list[tuple[str, str, str]]) -> None:
    from contracts import load_code_lists
    from gateway.config import load_config
    from gateway.db import make_engine
    from gateway.desk import Desk as DeskService
    from routing import RoutingHolder

    engine = make_engine(db_url, pool_size=2)
    routing = RoutingHolder(engine, None)
    routing.load()
    desk = DeskService(
        engine, routing, load_config(None, env={"GATEWAY_DATABASE_URL": db_url}), load_code_lists()
    )
    try:
        for person, scope, role in grants:
            desk.grant("SE2321000016-ADM1", person, scope, role)
    finally:
        desk.close()
        engine.dispose()


@pytest.fixture(scope="module")
def desk(pki: ExamplePki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    workdir = tmp_path_factory.mktemp("desk")
    db_url = f"sqlite:///{workdir / 'gateway.db'}"
    receiver = ReceiverProcess(pki, workdir, "1177").start()
    web_port = free_port()
    gateway = GatewayProcess(
        pki,
        db_url,
        workdir,
        catalogue=catalogue_for(workdir, {"1177-case-service": receiver}),
        extra={
            "outbox": {
                "client_certificate": pki.clients["gateway"].cert,
                "client_key": pki.clients["gateway"].key,
                "poll_ms": 50,
            },
            "web": {"bind": f"127.0.0.1:{web_port}", "public_url": f"https://localhost:{web_port}"},
        },
    )
    fallback: subprocess.Popen[bytes] | None = None
    try:
        gateway.start()
        if not _listening(web_port):  # `gateway serve` does not start the [web] listener yet
            with (workdir / "web.log").open("ab") as log:
                fallback = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.browser.webserver",
                        "--config",
                        str(workdir / "gateway.toml"),
                    ],
                    cwd=ROOT,
                    env={k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + 40
            while not _listening(web_port):
                if fallback.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "web listener did not start:\n" + (workdir / "web.log").read_text()[-3000:]
                    )
                time.sleep(0.1)
        people = {
            HANDLER: (pki.clients["handler"].cert, pki.clients["handler"].key),
            NO_HSA_ID: (pki.clients["no-serial"].cert, pki.clients["no-serial"].key),
        }
        for hsa_id, name in ((HANDLER2, "Andra handläggaren"), (READER, "Läsaren"), (OTHER, "Annan enhet")):
            people[hsa_id] = person_certificate(pki, name, hsa_id, workdir / "people")
        _grant(
            db_url,
            [
                (HANDLER, DESK_UNIT, "handler"),
                (HANDLER2, DESK_UNIT, "handler"),
                (READER, CARE_PROVIDER, "reader"),
                (OTHER, OTHER_UNIT, "handler"),
            ],
        )
        yield Desk(f"https://localhost:{web_port}", gateway, receiver, people, workdir)
    finally:
        if fallback is not None and fallback.poll() is None:
            os.killpg(fallback.pid, signal.SIGTERM)
            try:
                fallback.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(fallback.pid, signal.SIGKILL)
        gateway.stop()
        receiver.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages are photographed: GATEWAY_TEST_SCREENSHOTS (docs/images to refresh the docs) or tmp."""
    chosen = os.environ.get("GATEWAY_TEST_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def hostile_texts() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]
