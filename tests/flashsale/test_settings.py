import pytest

from core.settings import EXAMPLE_JWT_SECRET, ConfigurationError, load_settings


def test_defaults_are_the_development_ones() -> None:
    settings = load_settings(_env_file=None)
    assert settings.is_development
    assert settings.reservation_ttl_seconds == 600
    assert settings.jwt_secret == EXAMPLE_JWT_SECRET


def test_production_names_every_example_secret_at_once() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(environment="production", _env_file=None)
    assert "JWT_SECRET" in str(refused.value)
    assert "ADMIN_PASSWORD" in str(refused.value)


def test_production_needs_real_secrets() -> None:
    with pytest.raises(ConfigurationError, match="JWT_SECRET"):
        load_settings(environment="production", admin_password="real", _env_file=None)
    settings = load_settings(
        environment="production", jwt_secret="s" * 32, admin_password="real", _env_file=None
    )
    assert not settings.is_development


def test_origins_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example, http://localhost:3000")
    assert load_settings(_env_file=None).allowed_origins == [
        "https://shop.example",
        "http://localhost:3000",
    ]


def test_several_problems_are_named_together() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(reservation_ttl_seconds=0, log_level="LOUD", _env_file=None)
    assert "RESERVATION_TTL_SECONDS" in str(refused.value)
    assert "LOG_LEVEL" in str(refused.value)


def test_the_currency_is_an_iso_4217_code() -> None:
    assert load_settings(_env_file=None).currency == "USD"
    assert load_settings(currency=" eur ", _env_file=None).currency == "EUR"
    with pytest.raises(ConfigurationError, match="CURRENCY"):
        load_settings(currency="dollars", _env_file=None)
