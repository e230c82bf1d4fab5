"""PII detection: each entity, the checksums that keep look-alikes out, and redaction."""

import pytest

from llm_gateway.pipeline.hooks.pii import describe, find_pii, iban_ok, luhn_ok, redact


@pytest.mark.parametrize("text,entity", [
    ("write to jane.doe+news@mail.example.co.uk today", "email"),
    ("call +1 (555) 123-4567 now", "phone"),
    ("call +44 20 7946 0958 now", "phone"),
    ("call 555-123-4567 now", "phone"),
    ("call (555) 123-4567 now", "phone"),
    ("card 4111 1111 1111 1111 ok", "card"),
    ("card 5500-0000-0000-0004 ok", "card"),
    ("card 378282246310005 ok", "card"),
    ("iban DE89 3704 0044 0532 0130 00 please", "iban"),
    ("iban GB82WEST12345698765432 please", "iban"),
    ("ssn 123-45-6789 here", "national_id"),
    ("nino AB 12 34 56 C here", "national_id"),
])
def test_each_entity_is_found(text, entity):
    spans = find_pii(text)
    assert [s.entity for s in spans] == [entity], spans


@pytest.mark.parametrize("text", [
    "order 4111 1111 1111 1112 shipped",  # fails Luhn
    "iban DE00 3704 0044 0532 0130 00 wrong",  # fails mod 97
    "ssn 000-12-3456 and 666-12-3456 are never issued",
    "version 1.2.3 on 2026-11-26 at 10:30, build 12345",
    "no at sign here, just words",
])
def test_look_alikes_are_not_pii(text):
    assert find_pii(text) == []


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and iban_ok("DE89 3704 0044 0532 0130 00")
    assert not iban_ok("DE88370400440532013000") and not iban_ok("DE89")


def test_redact_masks_every_span_and_keeps_the_rest():
    text = "Hi, I'm at a@b.io, card 4111111111111111, IBAN DE89370400440532013000."
    spans = find_pii(text)
    assert redact(text, spans) == "Hi, I'm at [EMAIL], card [CARD], IBAN [IBAN]."
    assert redact(text, spans, "<{entity}>") == "Hi, I'm at <EMAIL>, card <CARD>, IBAN <IBAN>."
    assert describe(spans) == "1 email, 1 card number, 1 IBAN"


def test_entities_filter_and_no_overlaps():
    text = "mail x@y.com card 4111 1111 1111 1111"
    assert [s.entity for s in find_pii(text, frozenset({"card"}))] == ["card"]
    spans = find_pii("DE89 3704 0044 0532 0130 00")  # digits inside an IBAN are not also a card
    assert [s.entity for s in spans] == ["iban"]
