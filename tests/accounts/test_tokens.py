"""Verified tokens are remembered (bounded) until their `exp`: a pure unit, the signature
work counted by wrapping PyJWT's decode."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from bson import ObjectId

from accounts import tokens as tokens_module
from accounts.errors import InvalidToken
from accounts.tokens import TokenService
from models import Role

SECRET = "unit-test-secret-unit-test-secret-0000"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt.decode

    def counted(token: str, *args: object, **kwargs: object) -> object:
        calls.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counted)
    return calls


def test_a_token_is_verified_once_then_remembered(verifications: list[str]) -> None:
    service = TokenService(SECRET, 3600)
    user = ObjectId()
    token = service.issue(user, Role.CUSTOMER)
    for _ in range(5):
        claims = service.decode(token)
        assert (claims.user_id, claims.role) == (user, Role.CUSTOMER)
    assert verifications == [token]


def test_a_remembered_token_still_expires_at_its_exp(verifications: list[str]) -> None:
    clock = Clock()
    service = TokenService(SECRET, 3600, clock=clock)
    token = service.issue(ObjectId(), Role.CUSTOMER)
    service.decode(token)
    clock.now += 3601  # past its exp
    with pytest.raises(InvalidToken, match="expired"):
        service.decode(token)
    with pytest.raises(InvalidToken, match="expired"):  # and it stays so
        service.decode(token)


def test_a_bad_token_is_never_remembered(verifications: list[str]) -> None:
    service = TokenService(SECRET, 3600)
    token = service.issue(ObjectId(), Role.ADMIN)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(InvalidToken, match="invalid"):
            service.decode(forged)
    old = service.issue(ObjectId(), Role.ADMIN, now=datetime.now(UTC) - timedelta(hours=2))
    for _ in range(2):
        with pytest.raises(InvalidToken, match="expired"):
            service.decode(old)
    assert verifications == [forged, forged, old, old]


def test_the_cache_is_bounded(verifications: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens_module, "VERIFIED_CACHE_SIZE", 3)
    service = TokenService(SECRET, 3600)
    issued = [service.issue(ObjectId(), Role.CUSTOMER) for _ in range(4)]
    for token in issued:
        service.decode(token)
    service.decode(issued[-1])  # remembered
    service.decode(issued[0])  # the least recently used: forgotten, verified again
    assert verifications == [*issued, issued[0]]
