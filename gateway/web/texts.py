"""Swedish words for the codes the desk shows: statuses, categories, roles, timeline entries, refusals.

The pages speak Swedish to people; the code, the API's field names and the logs stay English. A value the
tables do not know is shown as it is (escaped like everything else), so a new code never breaks a page.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ACTION_LABELS",
    "CATEGORIES",
    "CHANNELS",
    "CODE_FIELDS",
    "DELIVERY",
    "DIRECTIONS",
    "MOVE_EXPLAINED",
    "REPORTER_ROLES",
    "ROLES",
    "STATUSES",
    "STATUS_HELP",
    "TIMELINE_KINDS",
    "word",
]

STATUSES: Mapping[str, str] = {
    "REGISTERED": "Nytt",
    "RECEIVED": "Mottaget",
    "IN_PROGRESS": "Under handläggning",
    "WAITING_FOR_REPORTER": "Väntar på anmälaren",
    "ANSWERED": "Besvarat",
    "CLOSED": "Avslutat",
    "REDIRECTED": "Överlämnat",
}

#: what each status means, for the help page and the filter's description
STATUS_HELP: Mapping[str, str] = {
    "REGISTERED": "Ärendet har kommit in men mottagningsbekräftelsen har inte skickats än.",
    "RECEIVED": "Anmälaren har fått en bekräftelse i sin inkorg på 1177 om att ärendet tagits emot.",
    "IN_PROGRESS": "Ärendet handläggs. Ett delsvar eller ett svar på en motfråga ger också denna status.",
    "WAITING_FOR_REPORTER": "Du har ställt en motfråga och väntar på att anmälaren svarar.",
    "ANSWERED": "Slutsvaret är skickat. Ärendet kan nu avslutas.",
    "CLOSED": "Ärendet är avslutat och kan inte ändras längre.",
    "REDIRECTED": "Ärendet har lämnats över till en annan enhet via ett integrerat system.",
}

CATEGORIES: Mapping[str, str] = {"COMPLAINT": "Klagomål", "FEEDBACK": "Synpunkt"}

REPORTER_ROLES: Mapping[str, str] = {
    "SUBJECT_OF_CARE": "Patienten själv",
    "GUARDIAN": "Vårdnadshavare",
    "REPRESENTATIVE": "Närstående med fullmakt (ombud)",
}

CHANNELS: Mapping[str, str] = {
    "WEB": "1177.se",
    "PHONE": "Telefon",
    "LETTER": "Brev",
    "VISIT": "Besök",
    "OTHER": "Annat sätt",
    "INBOX": "Inkorgen på 1177",
}

ROLES: Mapping[str, str] = {
    "reader": "Läsare (får läsa ärenden)",
    "handler": "Handläggare (får läsa och hantera ärenden)",
    "operator": "Driftansvarig",
    "statistician": "Statistiker",
}

ACTION_LABELS: Mapping[str, str] = {
    "RECEIVED": "Markera som mottaget",
    "IN_PROGRESS": "Markera som under handläggning",
    "PARTIAL_ANSWER": "Skicka delsvar",
    "QUESTION": "Ställ motfråga",
    "ANSWER": "Skicka slutsvar",
    "CLOSED": "Avsluta ärendet",
    "ALLOW_ATTACHMENTS": "Bilagor från anmälaren",
    "CORRECT_STATISTICS": "Rätta statistikkoder",
    "SET_CONCERNED_UNIT": "Ange enhet där händelsen inträffade",
    "MOVE": "Flytta till annan enhet",
}

TIMELINE_KINDS: Mapping[str, str] = {
    "RegisterCase": "Ärendet kom in från 1177",
    "RECEIVED": "Mottagningsbekräftelse till anmälaren",
    "IN_PROGRESS": "Markerat som under handläggning",
    "PARTIAL_ANSWER": "Delsvar",
    "QUESTION": "Motfråga",
    "ANSWER": "Slutsvar",
    "CLOSED": "Ärendet avslutat",
    "REDIRECTED": "Överlämnat till annan enhet",
    "UNIT_CORRECTED": "Enhet där händelsen inträffade angiven",
    "CITIZEN_REPLY": "Svar från anmälaren på motfråga",
    "SUPPLEMENT": "Komplettering från anmälaren",
    "ACCESS_DENIED": "Nekad åtkomst",
    "ALLOW_ATTACHMENTS": "Bilagor från anmälaren tillåtna",
    "DISALLOW_ATTACHMENTS": "Bilagor från anmälaren inte längre tillåtna",
    "CORRECT_STATISTICS": "Statistikkoder rättade",
    "SET_CONCERNED_UNIT": "Enhet där händelsen inträffade angiven",
    "EXPORT": "Ärendet exporterat",
    "HAND_OVER": "Lämnat över till regionens eget system",
}

DIRECTIONS: Mapping[str, str] = {
    "in": "Från 1177",
    "out": "Till 1177",
    "desk": "I ärendehanteringen",
}

DELIVERY: Mapping[str, str] = {
    "pending": "Väntar på att skickas",
    "inflight": "Skickas nu",
    "done": "Levererat till 1177",
    "dead": "Kunde inte levereras, kontakta driften",
    "skipped": "Skickades inte (stoppat av driften)",
}

CODE_FIELDS: Mapping[str, str] = {
    "mainProblem": "Huvudproblem",
    "subProblem": "Delproblem",
    "experiencedProblem": "Upplevt problem",
    "businessArea": "Verksamhetsområde",
    "gender": "Kön",
}

#: why a case cannot be moved to another unit in the desk (the staff tool cannot either)
MOVE_EXPLAINED = "Ärendet kan inte flyttas i ärendehanteringen; ett integrerat system kan skicka det vidare."


def word(table: Mapping[str, str], code: str | None) -> str:
    """The Swedish word for ``code`` in ``table``, or the code itself (an empty string for None)."""
    if code is None:
        return ""
    return table.get(code, code)
