"""Automatic persisted queries (Apollo's APQ protocol) and trusted documents.

A request may name its document by `extensions.persistedQuery = {"version": 1,
"sha256Hash": "<hex>"}`, with or without `query`. Hash only: the registered document runs, or
the answer is PersistedQueryNotFound (HTTP 200, not cached) and the client sends it again
with the query. Hash and query: the hash must be the query's SHA-256; once the document has
passed parsing and validation it is registered in Redis (shared by every API process, kept
`ttl` seconds after its last read there, at most `max_bytes` long) behind a small LRU in
each process. Strawberry's parser and validation caches, keyed by the text, then make a
registered document cost one parse and one validation per process.

With trusted documents only the manifest's documents run, by hash or by text; nothing is
registered. The statuses and codes are Apollo's: Apollo Server's for APQ, the Apollo
Router's safelist (PERSISTED_QUERY_NOT_IN_LIST) for trusted documents.
"""

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.settings import Settings, read_trusted_documents

logger = logging.getLogger("flashsale.persisted")

VERSION = 1
KEY_PREFIX = "fs:apq:"
# Apollo Server's: the answer to a miss must not be cached (the next request registers it).
NOT_CACHED = {"Cache-Control": "private, no-cache, must-revalidate"}
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class PersistedQueryCode(StrEnum):
    NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
    BAD_REQUEST = "BAD_REQUEST"


class PersistedQueryRefused(Exception):
    """A request refused before its document is known; the view answers it as is."""

    def __init__(
        self,
        status: int,
        code: PersistedQueryCode,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Resolved:
    """The document to run, and the hash to register it under once it has passed
    validation (None: nothing to register)."""

    query: str | None
    register: str | None = None


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


def _refused(status: int, code: PersistedQueryCode, message: str) -> PersistedQueryRefused:
    return PersistedQueryRefused(status, code, message)


@dataclass
class _Lru:
    size: int
    entries: "OrderedDict[str, str]" = field(default_factory=OrderedDict)

    def get(self, key: str) -> str | None:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


class PersistedQueries:
    """The registry. Redis holds the registrations (one key per hash, its value the
    document: a write is one SET of a value its key determines, so processes registering
    the same document at once agree); each process keeps the last `local_size` it used."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        ttl_seconds: int = 86_400,
        max_bytes: int = 32 * 1024,
        trusted: Mapping[str, str] | None = None,
        local_size: int = 1_000,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self.enabled = enabled
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        self.trusted = dict(trusted) if trusted is not None else None
        self.prefix = prefix
        self._local = _Lru(local_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> "PersistedQueries":
        trusted = None
        if settings.trusted_documents_only:
            assert settings.trusted_documents_file is not None  # the settings check it
            trusted = read_trusted_documents(settings.trusted_documents_file)
        return cls(
            enabled=settings.persisted_queries_enabled,
            ttl_seconds=settings.persisted_query_ttl_seconds,
            max_bytes=settings.persisted_query_max_bytes,
            trusted=trusted,
        )

    async def resolve(self, redis: Redis, query: str | None, extensions: object) -> Resolved:
        """The document a request runs; raises PersistedQueryRefused when there is none to
        run. Reads Redis only for a hash this process has not seen."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            if self.trusted is not None and query is not None:
                if sha256_hex(query) not in self.trusted:
                    raise _refused(
                        403,
                        PersistedQueryCode.NOT_IN_LIST,
                        "only trusted documents run here, and this one is not in the list",
                    )
            return Resolved(query)
        digest = self._digest(persisted)
        if query is not None and sha256_hex(query) != digest:
            raise _refused(400, PersistedQueryCode.BAD_REQUEST, "provided sha does not match query")
        if self.trusted is not None:
            document = self.trusted.get(digest)
            if document is None:
                raise _refused(
                    404,
                    PersistedQueryCode.NOT_IN_LIST,
                    f"persisted query {digest} is not in the trusted documents",
                )
            return Resolved(document)
        if not self.enabled:
            raise PersistedQueryRefused(
                200, PersistedQueryCode.NOT_SUPPORTED, "PersistedQueryNotSupported", NOT_CACHED
            )
        if query is not None:
            known = self._local.get(digest) is not None
            fits = len(query.encode("utf-8", "surrogatepass")) <= self.max_bytes
            return Resolved(query, None if known or not fits else digest)
        document = await self._lookup(redis, digest)
        if document is None:
            raise PersistedQueryRefused(
                200, PersistedQueryCode.NOT_FOUND, "PersistedQueryNotFound", NOT_CACHED
            )
        return Resolved(document)

    async def register(self, redis: Redis, digest: str, document: str) -> None:
        """Keep `document` under `digest` for every process. Call only once it has passed
        parsing and validation. A Redis failure is logged: the request is served anyway
        and the client registers again on its next miss."""
        self._local.put(digest, document)
        try:
            await redis.set(self.prefix + digest, document, ex=self.ttl_seconds)
        except RedisError as exc:
            logger.warning("persisted query %s not registered: %r", digest, exc)

    async def _lookup(self, redis: Redis, digest: str) -> str | None:
        document = self._local.get(digest)
        if document is not None:
            return document
        try:
            # Read and extend in one command: documents in use stay registered.
            stored = await redis.getex(self.prefix + digest, ex=self.ttl_seconds)
        except RedisError as exc:
            # Answered as a miss: the client sends the document along, and reads stay up.
            logger.warning("persisted query %s not read: %r", digest, exc)
            return None
        if stored is None:
            return None
        document = stored.decode() if isinstance(stored, bytes) else str(stored)
        if sha256_hex(document) != digest:  # never serve what the hash does not name
            return None
        self._local.put(digest, document)
        return document

    @staticmethod
    def _digest(persisted: object) -> str:
        if not isinstance(persisted, dict):
            raise _refused(
                400, PersistedQueryCode.BAD_REQUEST, "`extensions.persistedQuery` must be an object"
            )
        version = persisted.get("version")
        if isinstance(version, bool) or version != VERSION:
            raise _refused(
                400, PersistedQueryCode.BAD_REQUEST, "Unsupported persisted query version"
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise _refused(
                400,
                PersistedQueryCode.BAD_REQUEST,
                "`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits",
            )
        return digest.lower()
