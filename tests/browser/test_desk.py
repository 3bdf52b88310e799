"""The case desk in Chromium over mutual TLS with personal certificates, against a real gateway.

A handler signs in with the demo handler certificate, finds a case, reads it, opens the citizen's
attachment, sends a partial answer, asks a counter-question, answers with a standard answer and a PDF and
closes the case; 1177's case service then has RECEIVED, PARTIAL_ANSWER, QUESTION, ANSWER and CLOSED, in
order, each valid against the UpdateCase schema. A reader reads but cannot act; a person of another unit
sees nothing; the loser of two handlers is told the case changed; HTML and script payloads in a case run
nothing. axe-core finds no serious or critical violation on any page visited.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from contracts import load_registry
from contracts.validation import SchemaValidator
from gateway.certs import ExamplePki
from tests.browser.conftest import (
    HANDLER,
    HANDLER2,
    NO_HSA_ID,
    OTHER,
    PDF,
    PNG,
    READER,
    Desk,
    hostile_texts,
)

pytestmark = pytest.mark.slow
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


def check_accessibility(page: Any, axe_script: Path, where: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation.

    The page's CSP refuses ``page.add_script_tag`` (an inline script), as it should; axe is evaluated
    through the DevTools protocol instead, which no page policy governs, so the pages are checked with
    their real CSP in force.
    """
    page.evaluate("source => { (0, eval)(source) }", axe_script.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations'],"
        " runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{where}: " + "; ".join(bad)


def shoot(page: Any, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"))


@pytest.fixture(scope="module")
def cases(desk: Desk, pki: ExamplePki) -> Desk:
    desk.register(pki, "1177-DESK-0001", attachment=("röntgenbild.png", "image/png", PNG))
    desk.register(pki, "1177-DESK-0002", category="FEEDBACK", description="Personalen var mycket vänlig.")
    desk.register(pki, "1177-DESK-0003")
    desk.register(pki, "1177-DESK-0004", description="Jag fick fel tid till återbesöket.")
    return desk


def _watch_for_script(page: Any) -> list[str]:
    """Collects dialogs and page errors (a payload that runs would cause one or set window.__xss)."""
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("pageerror", lambda error: seen.append(f"error: {error}"))
    return seen


def test_a_handler_answers_a_case_from_start_to_close(
    cases: Desk, browser: Any, axe_script: Path, screenshots: Path
) -> None:
    context = cases.context(browser, HANDLER)
    page = context.new_page()
    problems = _watch_for_script(page)
    page.goto(cases.web_url + "/")
    assert page.title().startswith("Ärenden")
    assert page.locator("html").get_attribute("lang") == "sv"
    check_accessibility(page, axe_script, "case list")
    shoot(page, screenshots, "desk-case-list")

    page.get_by_label("Ärende-id").fill("1177-DESK-0001")
    page.get_by_role("button", name="Visa ärenden").click()
    assert page.get_by_role("heading", name="1 ärende som passar filtren").is_visible()
    page.get_by_role("link", name="1177-DESK-0001").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Klagomål, ärende 1177-DESK-0001"
    assert page.get_by_text("ihållande ryggsmärta").is_visible()
    assert page.get_by_text("kim.exempelsson@example.se").is_visible()
    check_accessibility(page, axe_script, "case page")
    shoot(page, screenshots, "desk-case")

    with page.expect_download() as opened:
        page.get_by_role("link", name="röntgenbild.png").first.click()
    assert Path(opened.value.path()).read_bytes() == PNG
    assert opened.value.suggested_filename == "röntgenbild.png"

    page.locator("#text-PARTIAL_ANSWER").fill("Vi har tagit upp ditt ärende med verksamhetschefen.")
    page.get_by_role("button", name="Skicka delsvar").click()
    assert page.get_by_role("status").inner_text() == "Delsvaret är skickat till anmälaren."
    check_accessibility(page, axe_script, "case page after an action")

    page.locator("#text-QUESTION").fill("Vilken dag ringde du till mottagningen?")
    page.get_by_role("button", name="Skicka motfråga").click()
    assert page.get_by_role("status").inner_text() == "Motfrågan är skickad till anmälaren."

    answers = page.get_by_label(re.compile(r"^Standardsvar: "))
    answers.first.check()
    page.locator("#filer-ANSWER").set_input_files(
        files=[{"name": "beslut.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.locator("section[aria-labelledby=h-ANSWER]").screenshot(path=str(screenshots / "desk-answer.png"))
    page.get_by_role("button", name="Skicka slutsvar").click()
    assert page.get_by_role("status").inner_text() == "Slutsvaret är skickat till anmälaren."

    page.get_by_label("Jag vill avsluta ärendet").check()
    page.get_by_role("button", name="Avsluta ärendet").click()
    assert page.get_by_role("status").inner_text() == "Ärendet är avslutat."
    assert page.get_by_text("Ärendet är avslutat och kan inte ändras.").is_visible()
    assert page.locator("form[method=post]").count() == 0
    check_accessibility(page, axe_script, "closed case")
    shoot(page, screenshots, "desk-closed")

    with page.expect_download() as exported:
        page.get_by_role("link", name="Ladda ner ärendet (zip)").click()
    assert Path(exported.value.path()).read_bytes()[:2] == b"PK"
    assert problems == []
    context.close()

    arrivals = cases.receiver.wait_for(5, timeout=60)
    mine = [a for a in arrivals if a["case_id"] == "1177-DESK-0001"]
    assert [etree.fromstring(a["body"]).findtext(f"{SOAP}Body/*/{{*}}updateType") for a in mine] == [
        "RECEIVED",
        "PARTIAL_ANSWER",
        "QUESTION",
        "ANSWER",
        "CLOSED",
    ]
    sequences = [a["sequence"] for a in mine]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    registry, validator = load_registry(), SchemaValidator()
    contract = registry.by_operation("UpdateCase")
    for arrival in mine:
        payload = etree.fromstring(arrival["body"]).find(f"{SOAP}Body")[0]
        assert validator.errors(contract, payload) == []
    answer = etree.fromstring(mine[3]["body"]).find(f"{SOAP}Body")[0]
    assert answer.findtext("{*}message/{*}standardAnswer/{*}code")
    assert answer.findtext("{*}attachment/{*}fileName") == "beslut.pdf"


def test_the_loser_of_two_handlers_is_told_the_case_changed(
    cases: Desk, browser: Any, axe_script: Path, screenshots: Path
) -> None:
    first, second = cases.context(browser, HANDLER), cases.context(browser, HANDLER2)
    mine, theirs = first.new_page(), second.new_page()
    for page in (mine, theirs):
        page.goto(cases.web_url + "/cases/1177-DESK-0003")
    mine.locator("#text-PARTIAL_ANSWER").fill("Vi återkommer inom två veckor.")
    mine.get_by_role("button", name="Skicka delsvar").click()
    assert mine.get_by_role("status").is_visible()
    theirs.locator("#text-PARTIAL_ANSWER").fill("Mitt delsvar som kom för sent.")
    theirs.get_by_role("button", name="Skicka delsvar").click()
    assert theirs.get_by_role("heading", level=1).inner_text() == "Ärendet har ändrats sedan du öppnade det"
    assert theirs.locator("#din-text").input_value() == "Mitt delsvar som kom för sent."
    check_accessibility(theirs, axe_script, "conflict page")
    shoot(theirs, screenshots, "desk-conflict")
    theirs.get_by_role("link", name="Ladda om ärendet").click()
    assert theirs.get_by_text("Vi återkommer inom två veckor.").is_visible()
    first.close()
    second.close()


def test_a_reader_sees_the_case_but_cannot_act(
    cases: Desk, browser: Any, axe_script: Path, screenshots: Path
) -> None:
    context = cases.context(browser, READER)
    page = context.new_page()
    page.goto(cases.web_url + "/cases")
    assert page.get_by_role("link", name="1177-DESK-0002").is_visible()
    page.get_by_role("link", name="1177-DESK-0002").click()
    assert page.get_by_text("Personalen var mycket vänlig.").is_visible()
    assert page.get_by_text("Du har läsbehörighet till ärendet och kan inte hantera det.").is_visible()
    assert page.locator("form[method=post]").count() == 0
    assert page.get_by_text("kim.exempelsson@example.se").count() == 0
    check_accessibility(page, axe_script, "case page for a reader")
    shoot(page, screenshots, "desk-reader")
    page.goto(cases.web_url + "/me")
    assert page.get_by_role("cell", name=re.compile("Läsare")).is_visible()
    check_accessibility(page, axe_script, "my access")
    page.goto(cases.web_url + "/help")
    check_accessibility(page, axe_script, "help page")
    context.close()


def test_a_person_of_another_unit_sees_nothing(
    cases: Desk, browser: Any, axe_script: Path, screenshots: Path
) -> None:
    context = cases.context(browser, OTHER)
    page = context.new_page()
    page.goto(cases.web_url + "/cases")
    assert page.locator("table.cases").count() == 0
    assert page.get_by_text("1177-DESK").count() == 0
    check_accessibility(page, axe_script, "empty case list")
    response = page.goto(cases.web_url + "/cases/1177-DESK-0002")
    assert response is not None
    assert response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Du har inte behörighet"
    assert page.get_by_text("Jag sökte vård").count() == 0
    check_accessibility(page, axe_script, "forbidden page")
    shoot(page, screenshots, "desk-forbidden")
    attachment = page.request.get(cases.web_url + "/api/v1/cases/1177-DESK-0001")
    assert attachment.status == 403
    context.close()


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "escaping-alone"])
def test_payloads_in_a_case_run_nothing(
    cases: Desk, pki: ExamplePki, browser: Any, axe_script: Path, bypass_csp: bool
) -> None:
    case_id = f"1177-XSS-{int(bypass_csp)}"
    payloads = hostile_texts()
    cases.register(
        pki,
        case_id,
        description="\n".join(payloads),
        attachment=(payloads[1][:200] + ".png", "image/png", PNG),
    )
    context = cases.context(browser, HANDLER, bypass_csp=bypass_csp)
    page = context.new_page()
    problems = _watch_for_script(page)
    page.goto(cases.web_url + f"/cases/{case_id}")
    page.wait_for_load_state("load")
    assert page.evaluate("() => window.__xss === undefined")
    assert problems == []
    text = page.locator(".quote").inner_text()
    for payload in payloads:
        assert payload in text
    assert page.locator(".quote *").count() == 0  # nothing in the description became an element
    page.goto(cases.web_url + f"/cases?case={case_id}")
    assert page.evaluate("() => window.__xss === undefined")
    if not bypass_csp:
        check_accessibility(page, axe_script, "case list with a hostile case")
    context.close()


def test_the_accessibility_check_finds_what_it_should(cases: Desk, browser: Any, axe_script: Path) -> None:
    """The check is not vacuous: a form field whose label is taken away is a critical violation."""
    context = cases.context(browser, HANDLER)
    page = context.new_page()
    page.goto(cases.web_url + "/cases")
    page.evaluate("() => document.querySelector('label[for=f-case_id]').remove()")
    with pytest.raises(AssertionError, match="label"):
        check_accessibility(page, axe_script, "case list without a label")
    context.close()


def test_a_certificate_without_hsa_id_gets_a_swedish_page(
    cases: Desk, browser: Any, axe_script: Path
) -> None:
    context = cases.context(browser, NO_HSA_ID)
    page = context.new_page()
    response = page.goto(cases.web_url + "/cases")
    assert response is not None
    assert response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Du är inte inloggad"
    assert page.get_by_text("1177-DESK").count() == 0
    check_accessibility(page, axe_script, "not signed in")
    api = page.request.get(cases.web_url + "/api/v1/me")
    assert api.status == 401
    context.close()
