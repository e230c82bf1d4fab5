"""PII detection and redaction: emails, phone numbers, card numbers (Luhn), IBANs (mod 97) and
national ids (US SSN, UK National Insurance number).

Detection is regex first, then a checksum where the format has one, so a 16-digit order number
is not taken for a card and a random `DE12…` string is not taken for an IBAN. Spans never
overlap: entities are tried in a fixed order (IBAN, card, national id, email, phone) and a
later match inside an earlier one is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENTITIES = ("email", "phone", "card", "iban", "national_id")
# the longest entity text a detector can match (for the stream hold-back window)
MAX_ENTITY_CHARS = 48

_EMAIL = re.compile(r"(?<![\w.+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}(?![\w\-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}"  # +44 20 7946 0958, +1 (555) 123-4567, +4915112345678
    r"|\(\d{3}\)[ .\-]?\d{3}[ .\-]?\d{4}"  # (555) 123-4567
    r"|\d{3}[.\-]\d{3}[.\-]\d{4}"  # 555-123-4567, 555.123.4567
    r"|\d{3} \d{3} \d{4}"  # 555 123 4567
    r")(?![\w])"
)
_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?!\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])")
_NINO = re.compile(r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 check: length 15–34, then mod 97 of the rearranged number equals 1."""
    s = iban.replace(" ", "")
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    entity: str


def _cards(text: str) -> list[Span]:
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ \-]", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            out.append(Span(m.start(), m.end(), "card"))
    return out


def _ibans(text: str) -> list[Span]:
    out = []
    for m in _IBAN.finditer(text):
        candidate = m.group()
        # the pattern is greedy: also try without trailing space-separated groups ("… 00 THANKS")
        while candidate:
            if iban_ok(candidate):
                out.append(Span(m.start(), m.start() + len(candidate), "iban"))
                break
            if " " not in candidate:
                break
            candidate = candidate.rsplit(" ", 1)[0]
    return out


def _national_ids(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "national_id") for p in (_SSN, _NINO) for m in p.finditer(text)]


def _emails(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]


def _phones(text: str) -> list[Span]:
    out = []
    for m in _PHONE.finditer(text):
        n = sum(c.isdigit() for c in m.group())
        if 7 <= n <= 15:
            out.append(Span(m.start(), m.end(), "phone"))
    return out


_DETECTORS = (("iban", _ibans), ("card", _cards), ("national_id", _national_ids), ("email", _emails), ("phone", _phones))


def find_pii(text: str, entities: frozenset[str] | None = None) -> list[Span]:
    """Non-overlapping PII spans in `text`, in order."""
    if not text:
        return []
    taken: list[Span] = []
    for entity, detect in _DETECTORS:
        if entities is not None and entity not in entities:
            continue
        # cheap pre-filters: no '@' -> no email; too few digits -> no number-shaped entity
        if entity == "email" and "@" not in text:
            continue
        for span in detect(text):
            if not any(span.start < t.end and t.start < span.end for t in taken):
                taken.append(span)
    taken.sort(key=lambda s: s.start)
    return taken


def redact(text: str, spans: list[Span], mask: str = "[{entity}]") -> str:
    if not spans:
        return text
    out, pos = [], 0
    for s in spans:
        out.append(text[pos:s.start])
        out.append(mask.format(entity=s.entity.upper()))
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def describe(spans: list[Span]) -> str:
    """`2 emails, 1 card` — counts only, never the values."""
    counts: dict[str, int] = {}
    for s in spans:
        counts[s.entity] = counts.get(s.entity, 0) + 1
    names = {"email": "email", "phone": "phone number", "card": "card number", "iban": "IBAN", "national_id": "national id"}
    return ", ".join(f"{n} {names[e]}{'s' if n > 1 else ''}" for e, n in counts.items())
