"""The password rules, on their own (no server needed)."""

import pytest

from accounts.password_rules import check_password, common_passwords
from core.errors import InvalidInput


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("12345678", "most common"),
        ("password", "most common"),
        ("PassWord", "most common"),
        (" iloveyou ", "most common"),
        ("１２３４５６７８", "most common"),  # full-width digits
        (" " * 8, "whitespace"),
        ("\t \n \u3000   ", "control"),
        ("\u3000" * 8, "whitespace"),
        ("\x00" * 8, "control"),
        ("good pass\x7fword", "control"),
        ("long enough\ud800", "control"),
        ("short", "8 to 128"),
        ("p" * 129, "8 to 128"),
    ],
)
def test_refused(password: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_password(password)
    assert refused.value.field == "password"
    assert why in refused.value.message


@pytest.mark.parametrize(
    "password", ["correct horse battery", "long enough pw", "ünïcödé pässwörd", "🔑🔑🔑🔑🔑🔑🔑🔑"]
)
def test_accepted(password: str) -> None:
    check_password(password)


def test_the_shipped_list_is_real_and_long() -> None:
    listed = common_passwords()
    assert len(listed) > 10_000
    assert {"12345678", "password", "qwertyuiop", "iloveyou"} <= listed
    assert all(len(p) >= 8 and p == p.lower() for p in listed)
