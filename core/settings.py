"""All configuration, from the environment (or a `.env` file), validated at start-up."""

from __future__ import annotations

import hashlib
import json
import os
import re
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Self

from email_validator import EmailNotValidError, validate_email
from limits import parse
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EXAMPLE_JWT_SECRET = "dev-only-secret-change-me-in-production-0000"
EXAMPLE_ADMIN_PASSWORD = "admin-password-change-me"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT

    # Unset means "start the embedded server" (only `flashsale serve` / `seed` do that).
    mongodb_uri: str | None = None
    mongodb_db: str = Field(default="flashsale", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    redis_url: str | None = None
    # REDIS_URL names any node of a Redis Cluster (every script touches one hash slot).
    redis_cluster: bool = False
    data_dir: Path = Path(".flashsale")
    # Where `flashsale serve` listens, and how many API processes it runs.
    host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.:_\[\]-]{1,253}$")
    port: int = Field(default=8000, ge=1, le=65_535)
    workers: int = Field(default=1, ge=1, le=64)

    reservation_ttl_seconds: int = Field(default=600, ge=5, le=86_400)
    # What every price and total is in (ISO 4217); the pages format amounts with it.
    currency: str = "USD"
    # Expiry, change-log persister and checkout recovery in this process (any number of
    # processes may run them at once).
    background_tasks: bool = True

    jwt_secret: str = EXAMPLE_JWT_SECRET
    jwt_ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)

    admin_email: str = "admin@flashsale.example"
    admin_password: str = EXAMPLE_ADMIN_PASSWORD

    graphiql_enabled: bool = True
    introspection_enabled: bool = True
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Operations in flight at once on one WebSocket (subscriptions, queries, mutations); on
    # whether or not the rate limits are.
    ws_max_operations: int = Field(default=20, ge=1, le=1_000)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="text", pattern=r"^(text|json)$")

    # Rate limits (sliding windows and the query cost budget, all in Redis). Off for load
    # tests; the query guards below stay on either way.
    rate_limits_enabled: bool = True
    rate_limit_per_ip: str = "60/minute"
    rate_limit_reserve_per_user: str = "5/minute"
    # Logins per e-mail address, from any client address (password guessing spread over
    # many addresses); counted whether or not the address has an account.
    rate_limit_login_per_email: str = "10/15 minutes"
    # Proxies (addresses or networks) whose X-Forwarded-For is believed. Empty: the peer
    # address is the client, whatever the headers say.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list
    )
    query_max_depth: int = Field(default=10, ge=2, le=100)
    query_max_aliases: int = Field(default=15, ge=1, le=1_000)
    query_max_tokens: int = Field(default=2_000, ge=100, le=100_000)
    query_max_cost: int = Field(default=2_000, ge=10, le=1_000_000)
    query_cost_budget: int = Field(default=10_000, ge=10, le=10_000_000)
    query_cost_restore_rate: int = Field(default=100, ge=1, le=1_000_000)

    # Automatic persisted queries (Apollo's protocol): documents registered by hash in
    # Redis, kept this long after their last read there, at most this long each.
    persisted_queries_enabled: bool = True
    persisted_query_ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    persisted_query_max_bytes: int = Field(default=32 * 1024, ge=256, le=1024 * 1024)
    # Only the documents of this manifest run (by hash or by text); nothing is registered.
    trusted_documents_only: bool = False
    trusted_documents_file: Path | None = None

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [
                ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
            ]
        return value

    @field_validator(
        "rate_limit_per_ip", "rate_limit_reserve_per_user", "rate_limit_login_per_email"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            rate = parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as 60/minute or 5/second") from None
        if rate.amount < 1:
            raise ValueError(f"{value!r} allows nothing: give at least 1 per window")
        return value

    @model_validator(mode="after")
    def _cost_fits_budget(self) -> Self:
        if self.query_max_cost > self.query_cost_budget:
            raise ValueError("QUERY_MAX_COST must not exceed QUERY_COST_BUDGET")
        return self

    @field_validator("trusted_documents_file")
    @classmethod
    def _readable_manifest(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_trusted_documents(value)
        return value

    @model_validator(mode="after")
    def _trusted_documents_named(self) -> Self:
        if self.trusted_documents_only and self.trusted_documents_file is None:
            raise ValueError(
                "TRUSTED_DOCUMENTS_ONLY needs TRUSTED_DOCUMENTS_FILE, the manifest to trust"
            )
        return self

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError(f"{value!r} is not an ISO 4217 code such as USD or EUR")
        return code

    @field_validator("mongodb_uri", "redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("data_dir")
    @classmethod
    def _usable_folder(cls, value: Path) -> Path:
        """A folder that exists and is writable, or that could be made in a writable one
        (nothing is created here)."""
        if value.exists():
            if not value.is_dir():
                raise ValueError(f"{value} is not a folder")
            if not os.access(value, os.W_OK | os.X_OK):
                raise ValueError(f"{value} is not writable")
            return value
        parent = value.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"{value} cannot be created: {parent} is not a writable folder")
        return value

    @field_validator("admin_email")
    @classmethod
    def _email(cls, value: str) -> str:
        try:
            return validate_email(value, check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("mongodb_uri")
    @classmethod
    def _mongo_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @model_validator(mode="after")
    def _no_example_secrets_in_production(self) -> Self:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if self.jwt_secret == EXAMPLE_JWT_SECRET or len(self.jwt_secret) < 32:
            problems.append("JWT_SECRET: set a random secret of at least 32 characters")
        if self.admin_password == EXAMPLE_ADMIN_PASSWORD:
            problems.append("ADMIN_PASSWORD: the example password is refused")
        if problems:
            raise ValueError("; ".join(problems) + " (ENVIRONMENT=production)")
        return self

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT


def read_trusted_documents(path: Path) -> dict[str, str]:
    """A trusted-documents manifest as {sha256 hex: document}. Either a JSON object of
    hash to document, or Apollo's persisted query manifest
    (`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id",
    "body", "name", "type"}]}`). Each hash must be its document's SHA-256; ValueError
    says what is wrong, in one line."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not JSON: {exc}".replace("\n", " ")) from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must hold a JSON object")
    pairs: list[tuple[object, object]]
    if "format" in manifest:
        if (
            manifest.get("format") != "apollo-persisted-query-manifest"
            or manifest.get("version") != 1
        ):
            raise ValueError(f"{path}: only apollo-persisted-query-manifest version 1 is read")
        operations = manifest.get("operations")
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise ValueError(f"{path}: `operations` must be a list of objects")
        pairs = [(o.get("id"), o.get("body")) for o in operations]
    else:
        pairs = list(manifest.items())
    documents: dict[str, str] = {}
    for number, (digest, body) in enumerate(pairs, 1):
        if not isinstance(digest, str) or not isinstance(body, str) or not body.strip():
            raise ValueError(f"{path}: entry {number} needs a hash and a document (strings)")
        if hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest() != digest.lower():
            raise ValueError(f"{path}: {digest} is not the SHA-256 of its document")
        documents[digest.lower()] = body
    if not documents:
        raise ValueError(f"{path} lists no documents")
    return documents


class ConfigurationError(Exception):
    """Bad configuration; the message names each offending environment variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}" if variable else message)
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
