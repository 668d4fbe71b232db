"""Which passwords an account may have: 8 to 128 characters, not only whitespace, no control
characters, and not one of the most common passwords (a list shipped with the package, see
common_passwords.txt for its source). Checked at registration only: a login compares, it
never refuses a password for its shape."""

import unicodedata
from functools import cache
from importlib import resources

from core.errors import InvalidInput

PASSWORD_MIN, PASSWORD_MAX = 8, 128
# Cc: C0 and C1 controls (NUL, tab, newline, DEL, ...), invisible and mangled by terminals
# and password managers. Cs: lone surrogates, which JSON can carry but UTF-8 cannot encode.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, read once per process (about 11,600 entries, all lower case)."""
    text = (resources.files("accounts") / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def _comparable(password: str) -> str:
    """The form the list is compared in: compatibility-normalised (full-width digits are
    digits), case-folded, without surrounding whitespace. "PassWord " is "password"."""
    return unicodedata.normalize("NFKC", password).casefold().strip()


def check_password(password: str) -> None:
    """Raise InvalidInput("password", why) unless the password follows every rule."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput("password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long")
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in password):
        raise InvalidInput("password", "must not contain control characters")
    if password.isspace():
        raise InvalidInput("password", "must not be only whitespace")
    if _comparable(password) in common_passwords():
        raise InvalidInput(
            "password",
            "is one of the most common passwords, tried first by attackers: pick another",
        )
