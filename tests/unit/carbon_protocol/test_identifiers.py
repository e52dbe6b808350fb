"""The identifier grammar: one definition, precise errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_protocol.errors import IdentifierError
from carbon_protocol.identifiers import Identifier, is_identifier, parse_identifier


@pytest.mark.parametrize(
    "text", ["86.1000.1/dev.meter-0001", "0/x", "86/r.0a1b:2_3", "1.2.3.4.5.6.7.8/A"]
)
def test_valid(text: str) -> None:
    ident = parse_identifier(text)
    assert str(ident) == text
    assert is_identifier(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no-slash", "expected '<prefix>/<suffix>'"),
        ("86.1000.1/", "invalid identifier suffix"),
        ("/abc", "invalid identifier prefix"),
        ("86.x/abc", "invalid identifier prefix"),
        ("86/a b", "invalid identifier suffix"),
        ("86/a/b", "invalid identifier suffix"),
        ("86/-lead", "invalid identifier suffix"),
        ("86/" + "a" * 129, "invalid identifier suffix"),
        ("86/é", "invalid identifier suffix"),
        ("1.2.3.4.5.6.7.8.9/a", "invalid identifier prefix"),
    ],
)
def test_invalid_names_the_reason(text: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=reason):
        parse_identifier(text)
    assert not is_identifier(text)


@given(st.text(max_size=40))
def test_parse_agrees_with_is_identifier(text: str) -> None:
    if is_identifier(text):
        assert str(parse_identifier(text)) == text
    else:
        with pytest.raises(IdentifierError):
            parse_identifier(text)


def test_of_builds_and_validates() -> None:
    assert str(Identifier.of("86.1", "x")) == "86.1/x"
    with pytest.raises(IdentifierError):
        Identifier.of("86.1", "")
