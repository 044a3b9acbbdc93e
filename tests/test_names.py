"""Person-name formatting (core, no Qt)."""

from __future__ import annotations

import pytest

from workstation.core.names import format_person_name


@pytest.mark.parametrize(("raw", "shown"), [
    ("OB^^^^", "OB"),
    ("DOE^JOHN", "DOE, JOHN"),
    ("DOE^JOHN^A^DR^JR", "DOE, JOHN A, DR, JR"),
    ("DOE^^A", "DOE, A"),
    ("^JOHN", "JOHN"),
    ("DOE^JOHN^^^JR", "DOE, JOHN, JR"),
    ("  DOE ^ JOHN ", "DOE, JOHN"),
    ("", ""),
    ("^^^^", ""),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada, Tarou"),
    ("=山田^太郎", "山田, 太郎"),
    ("PHANTOM", "PHANTOM"),
])
def test_person_names_show_only_their_non_empty_components(raw, shown):
    assert format_person_name(raw) == shown


def test_none_is_an_empty_name():
    assert format_person_name(None) == ""  # type: ignore[arg-type]
