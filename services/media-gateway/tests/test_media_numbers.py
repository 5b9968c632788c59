"""Numbers and callers as INVITEs carry them."""

from __future__ import annotations

import pytest
from hibiki_media_gateway.domain.numbers import Caller, caller, dialed_number


@pytest.mark.parametrize(
    "request_uri",
    [
        "sip:+81312345678@127.0.0.1:5060",
        "sip:81312345678@gw.example.jp;user=phone",
        "sip:0312345678@gw.example.jp",
        "tel:+81-3-1234-5678",
        "sips:0081312345678@gw.example.jp",
    ],
)
def test_the_dialed_number_is_e164_whatever_form_the_trunk_uses(request_uri: str) -> None:
    assert dialed_number(request_uri, "") == "+81312345678"


def test_the_to_header_names_the_number_when_the_request_uri_does_not() -> None:
    assert dialed_number("sip:ivr@10.0.0.5", '"代表" <sip:0312345678@carrier.example>') == "+81312345678"
    assert dialed_number("sip:ivr@10.0.0.5", "<sip:ivr@10.0.0.5>") is None


@pytest.mark.parametrize(
    ("from_", "asserted", "privacy", "expected"),
    [
        ("<sip:09012345678@carrier>;tag=1", "", "", Caller("+819012345678", False)),
        ("<sip:+819012345678@carrier>;tag=1", "<sip:0312345678@carrier>", "", Caller("+81312345678", False)),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1', "", "", Caller("", True)),
        ("<sip:+819012345678@carrier>;tag=1", "", "id", Caller("", True)),
        ("<sip:+819012345678@carrier>;tag=1", "", "header; id", Caller("", True)),
        ("<sip:+819012345678@carrier>;tag=1", "", "none", Caller("+819012345678", False)),
        ("<sip:alice@example.com>;tag=1", "", "", Caller("alice", False)),
        ("<sip:carrier.example>;tag=1", "", "", Caller("", False)),
    ],
)
def test_the_caller_comes_from_the_asserted_identity_or_from_and_privacy_withholds_it(
    from_: str, asserted: str, privacy: str, expected: Caller
) -> None:
    assert caller(from_, asserted, privacy) == expected
