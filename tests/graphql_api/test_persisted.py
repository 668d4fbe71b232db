"""Automatic persisted queries and trusted documents, as Apollo Client and urql use them:
hash first, the document only on a miss, then the hash alone from any API process."""

import dataclasses
import hashlib
import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql.language.parser import Parser
from graphql.validation import validate

from core.settings import ConfigurationError, Settings, load_settings
from graphql_api.app import create_app
from graphql_api.persisted import KEY_PREFIX
from services import Services
from tests.conftest import error_codes
from tests.graphql_api.test_ws_budget import serving
from tests.processes import ServerProcess, base_env, running, shared_env
from tests.ws import session

GRAPHQL_RESPONSE = "application/graphql-response+json"
NOT_CACHED = "private, no-cache, must-revalidate"


def document(body: str = "products(first: 1) { totalCount }") -> str:
    """A document no other test has registered (its comment makes its hash its own)."""
    return f"# {uuid.uuid4().hex}\nquery Probe {{ {body} }}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str, version: object = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def apq_post(
    http: httpx.AsyncClient, digest: str, query: str | None = None, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"extensions": persisted(digest)}
    if query is not None:
        body["query"] = query
    return await http.post("/graphql", json=body, headers=headers)


async def apq_get(http: httpx.AsyncClient, digest: str) -> httpx.Response:
    """Apollo Client's `useGETForHashedQueries`: the hash alone, in the query string."""
    params = {"extensions": json.dumps(persisted(digest), separators=(",", ":"))}
    return await http.get("/graphql", params=params, headers={"accept": "application/json"})


async def apollo_link(http: httpx.AsyncClient, query: str) -> dict[str, Any]:
    """What @apollo/client's persisted-queries link does: the hash; on
    PERSISTED_QUERY_NOT_FOUND, the hash and the document."""
    response = await apq_post(http, sha256(query))
    body: dict[str, Any] = response.json()
    if "PERSISTED_QUERY_NOT_FOUND" in error_codes(body):
        response = await apq_post(http, sha256(query), query)
        body = response.json()
    assert response.status_code == 200, response.text
    return body


async def registered(services: Services, query: str) -> str | None:
    stored = await services.redis.get(KEY_PREFIX + sha256(query))
    return None if stored is None else str(stored)


def configured(settings: Settings, **overrides: Any) -> Settings:
    return load_settings(**{**settings.model_dump(), **overrides}, _env_file=None)


@pytest_asyncio.fixture(loop_scope="session")
async def client_for(services: Services) -> AsyncIterator[Any]:
    """A client of an app built with these settings (the default: the suite's)."""
    opened: list[httpx.AsyncClient] = []

    def make(settings: Settings | None = None) -> httpx.AsyncClient:
        app = create_app(settings or services.settings, services)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.aclose()


# --- the APQ round trip -------------------------------------------------------------------


async def test_a_miss_then_the_document_then_the_hash_alone(
    client: httpx.AsyncClient, services: Services
) -> None:
    query = document()
    digest = sha256(query)

    miss = await apq_post(client, digest)
    assert miss.status_code == 200
    assert miss.headers["cache-control"] == NOT_CACHED
    assert miss.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }

    sent = await apq_post(client, digest, query)
    assert sent.status_code == 200
    assert sent.json()["data"] == {"products": {"totalCount": 0}}
    assert await registered(services, query) == query

    again = await apq_post(client, digest)
    assert again.json()["data"] == {"products": {"totalCount": 0}}
    by_get = await apq_get(client, digest)
    assert by_get.status_code == 200
    assert by_get.json()["data"] == {"products": {"totalCount": 0}}


@pytest.mark.parametrize("graphiql", [True, False], ids=["graphiql", "no-graphiql"])
async def test_a_hash_over_get_is_answered_whatever_the_accept_header(
    client_for: Any, services: Services, graphiql: bool
) -> None:
    """curl and many CDNs send Accept: */*; the hash alone, over GET, got GraphiQL's page
    for it (a 404 with GraphiQL off), as if no query had been sent."""
    http = client_for(configured(services.settings, graphiql_enabled=graphiql))
    query = document()
    await apq_post(http, sha256(query), query)
    params = {"extensions": json.dumps(persisted(sha256(query)))}
    for accept in ({"accept": "*/*"}, {"accept": "text/html, */*"}, {}):
        response = await http.get("/graphql", params=params, headers=accept)
        assert response.status_code == 200, accept
        assert response.json()["data"] == {"products": {"totalCount": 0}}, accept
    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert ("<!doctype html>" in page.text) is graphiql
    assert page.status_code == (200 if graphiql else 406)


async def test_a_miss_is_200_for_graphql_response_json_too(client: httpx.AsyncClient) -> None:
    """Apollo Server answers a miss with 200 whatever the media type, so no client error
    handling hides the code the link looks for."""
    miss = await apq_post(client, sha256(document()), accept=GRAPHQL_RESPONSE)
    assert miss.status_code == 200
    assert error_codes(miss.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_an_apollo_style_client_ends_up_sending_hashes_only(
    client_for: Any, services: Services
) -> None:
    """A fresh process (its own LRU) finds what another registered, in Redis."""
    query = document()
    first = client_for()
    assert (await apollo_link(first, query))["data"] == {"products": {"totalCount": 0}}
    second = client_for()
    served = await apq_post(second, sha256(query))
    assert served.json()["data"] == {"products": {"totalCount": 0}}


async def test_a_hash_that_does_not_match_the_document_is_refused(
    client: httpx.AsyncClient, services: Services
) -> None:
    query, other = document(), document()
    response = await apq_post(client, sha256(other), query)
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"message": "provided sha does not match query", "extensions": {"code": "BAD_REQUEST"}}
        ]
    }
    assert await registered(services, query) is None
    assert await services.redis.get(KEY_PREFIX + sha256(other)) is None


@pytest.mark.parametrize(
    "extensions",
    [
        persisted(sha256("{ __typename }"), version=2),
        persisted(sha256("{ __typename }"), version=True),
        persisted("not-a-hash"),
        {"persistedQuery": "abc"},
    ],
)
async def test_malformed_persisted_query_extensions_are_bad_requests(
    client: httpx.AsyncClient, extensions: dict[str, Any]
) -> None:
    response = await client.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (document("products(first: 1) { nope }"), "GRAPHQL_VALIDATION_FAILED"),
        (document("products(first: 1) { totalCount"), "GRAPHQL_PARSE_FAILED"),
        # Over QUERY_MAX_TOKENS (2,000): the parser stops before anything is registered.
        (document(" ".join(f"a{n}: __typename" for n in range(700))), "QUERY_TOO_COMPLEX"),
    ],
)
async def test_documents_that_fail_checks_are_never_registered(
    client: httpx.AsyncClient, services: Services, query: str, code: str
) -> None:
    response = await apq_post(client, sha256(query), query)
    assert code in error_codes(response.json())
    assert await registered(services, query) is None
    assert error_codes((await apq_post(client, sha256(query))).json()) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


async def test_a_document_over_the_size_cap_is_served_but_not_registered(
    client_for: Any, services: Services
) -> None:
    http = client_for(configured(services.settings, persisted_query_max_bytes=256))
    query = document() + "\n# " + "x" * 300
    response = await apq_post(http, sha256(query), query)
    assert response.json()["data"] == {"products": {"totalCount": 0}}
    assert await registered(services, query) is None


async def test_a_registered_mutation_still_may_not_run_over_get(
    client: httpx.AsyncClient, services: Services
) -> None:
    query = (
        f"# {uuid.uuid4().hex}\n"
        'mutation { login(email: "nobody@test.example", password: "wrong password 1") '
        "{ errors { code } } }"
    )
    registering = await apq_post(client, sha256(query), query)
    assert registering.json()["data"]["login"]["errors"]
    assert await registered(services, query) == query

    response = await apq_get(client, sha256(query))
    assert response.status_code == 405
    assert error_codes(response.json()) == ["METHOD_NOT_ALLOWED"]


async def test_switched_off_apq_says_not_supported(client_for: Any, services: Services) -> None:
    http = client_for(configured(services.settings, persisted_queries_enabled=False))
    query = document()
    response = await apq_post(http, sha256(query), query)
    assert response.status_code == 200
    assert error_codes(response.json()) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
    assert await registered(services, query) is None


# --- parsed and validated once per process -------------------------------------------------


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each document text was parsed and validated (graphql-core's parser
    and the validate Strawberry calls, wrapped for the test)."""
    counts: Counter[str] = Counter()
    parse_document = Parser.parse_document

    def counting_parse(self: Parser) -> Any:
        counts["parse:" + self._lexer.source.body] += 1
        return parse_document(self)

    def counting_validate(schema: Any, document_ast: Any, *args: Any, **kwargs: Any) -> Any:
        counts["validate:" + document_ast.loc.source.body] += 1
        return validate(schema, document_ast, *args, **kwargs)

    monkeypatch.setattr(Parser, "parse_document", counting_parse)
    monkeypatch.setattr("strawberry.schema.schema.validate", counting_validate)
    return counts


async def test_a_registered_document_is_parsed_and_validated_once(
    client: httpx.AsyncClient, checks: Counter[str]
) -> None:
    query = document()
    await apollo_link(client, query)
    for _ in range(5):
        assert (await apq_post(client, sha256(query))).json()["data"]
        assert (await apq_get(client, sha256(query))).json()["data"]
    assert checks["parse:" + query] == 1
    assert checks["validate:" + query] == 1


# --- several API processes -----------------------------------------------------------------


@pytest.fixture
def two_servers(servers: dict[str, str], services: Services) -> Iterator[list[ServerProcess]]:
    with running(shared_env(servers, services.settings.mongodb_db), 2) as started:
        yield started


async def test_two_processes_share_registrations(
    two_servers: list[ServerProcess], services: Services
) -> None:
    first, second = two_servers
    query = document()
    async with (
        httpx.AsyncClient(base_url=first.url) as a,
        httpx.AsyncClient(base_url=second.url) as b,
    ):
        assert error_codes((await apq_post(b, sha256(query))).json()) == [
            "PERSISTED_QUERY_NOT_FOUND"
        ]
        assert (await apollo_link(a, query))["data"] == {"products": {"totalCount": 0}}
        served = await apq_get(b, sha256(query))
    assert served.status_code == 200
    assert served.json()["data"] == {"products": {"totalCount": 0}}


# --- trusted documents ---------------------------------------------------------------------

TRUSTED = "query Trusted { products(first: 2) { totalCount } }"


def apollo_manifest(path: Path, *bodies: str) -> Path:
    operations = [
        {"id": sha256(body), "body": body, "name": "Trusted", "type": "query"} for body in bodies
    ]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


@pytest.fixture
def trusted_settings(services: Services, tmp_path: Path) -> Settings:
    return configured(
        services.settings,
        trusted_documents_only=True,
        trusted_documents_file=apollo_manifest(tmp_path / "manifest.json", TRUSTED),
    )


async def test_trusted_documents_run_by_hash_or_by_text(
    client_for: Any, trusted_settings: Settings
) -> None:
    http = client_for(trusted_settings)
    by_hash = await apq_post(http, sha256(TRUSTED))
    assert by_hash.json()["data"] == {"products": {"totalCount": 0}}
    by_get = await apq_get(http, sha256(TRUSTED))
    assert by_get.json()["data"] == {"products": {"totalCount": 0}}
    by_text = await http.post("/graphql", json={"query": TRUSTED})
    assert by_text.json()["data"] == {"products": {"totalCount": 0}}
    both = await apq_post(http, sha256(TRUSTED), TRUSTED)
    assert both.json()["data"] == {"products": {"totalCount": 0}}


async def test_untrusted_documents_are_refused_and_never_registered(
    client_for: Any, trusted_settings: Settings, services: Services
) -> None:
    http = client_for(trusted_settings)
    query = document()

    by_text = await http.post("/graphql", json={"query": query})
    assert by_text.status_code == 403
    assert error_codes(by_text.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]

    registering = await apq_post(http, sha256(query), query)
    assert registering.status_code == 404
    assert error_codes(registering.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert await registered(services, query) is None

    by_hash = await apq_post(http, sha256(query))
    assert by_hash.status_code == 404
    assert error_codes(by_hash.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]


async def test_documents_registered_by_apq_do_not_run_in_trusted_mode(
    client: httpx.AsyncClient, client_for: Any, trusted_settings: Settings
) -> None:
    query = document()
    await apollo_link(client, query)  # registered in Redis by an APQ process
    refused = await apq_post(client_for(trusted_settings), sha256(query))
    assert error_codes(refused.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]


def test_a_plain_hash_to_document_object_is_a_manifest_too(
    settings: Settings, tmp_path: Path
) -> None:
    manifest = tmp_path / "plain.json"
    manifest.write_text(json.dumps({sha256(TRUSTED): TRUSTED}))
    loaded = configured(settings, trusted_documents_only=True, trusted_documents_file=manifest)
    assert loaded.trusted_documents_file == manifest


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ("[]", "must hold a JSON object"),
        ("{}", "lists no documents"),
        (json.dumps({"0" * 64: TRUSTED}), "is not the SHA-256 of its document"),
        (json.dumps({sha256(TRUSTED): 3}), "needs a hash and a document"),
        (json.dumps({"format": "apollo-persisted-query-manifest", "version": 2}), "version 1"),
        (
            json.dumps({"format": "apollo-persisted-query-manifest", "version": 1}),
            "`operations` must be a list",
        ),
    ],
)
def test_a_bad_manifest_is_one_configuration_error(
    settings: Settings, tmp_path: Path, content: str | None, reason: str
) -> None:
    manifest = tmp_path / "manifest.json"
    if content is not None:
        manifest.write_text(content)
    with pytest.raises(ConfigurationError) as refused:
        configured(settings, trusted_documents_only=True, trusted_documents_file=manifest)
    message = str(refused.value)
    assert message.startswith("invalid configuration: TRUSTED_DOCUMENTS_FILE: ")
    assert reason in message
    assert "\n" not in message


def test_trusted_mode_without_a_manifest_is_refused(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="TRUSTED_DOCUMENTS_ONLY needs"):
        configured(settings, trusted_documents_only=True)


def test_serve_with_a_bad_manifest_stops_with_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"0" * 64: TRUSTED}))
    env = base_env(
        TRUSTED_DOCUMENTS_ONLY="true",
        TRUSTED_DOCUMENTS_FILE=str(manifest),
        DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "flashsale", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("flashsale: invalid configuration: TRUSTED_DOCUMENTS_FILE: ")
    assert "is not the SHA-256 of its document" in lines[0]


# --- over WebSocket ---------------------------------------------------------------------


async def _ws_operation(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One operation over graphql-transport-ws: its first message (`next` or `error`)."""
    async with session(url) as ws:
        await ws.socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        return await ws.receive()


async def test_a_registered_hash_runs_over_a_websocket_too(
    client: httpx.AsyncClient, services: Services
) -> None:
    query = document("products(first: 2) { totalCount }")
    await apollo_link(client, query)  # registered over HTTP
    async with serving(services) as url:
        answer = await _ws_operation(url, {"extensions": persisted(sha256(query))})
        assert answer["type"] == "next", answer
        assert "totalCount" in answer["payload"]["data"]["products"]
        missing = await _ws_operation(url, {"extensions": persisted(sha256("{ nope }"))})
    assert missing["type"] == "error"
    assert missing["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_trusted_documents_hold_over_a_websocket_too(
    services: Services, trusted_settings: Settings
) -> None:
    trusted = dataclasses.replace(services, settings=trusted_settings)
    async with serving(trusted) as url:
        allowed = await _ws_operation(url, {"query": TRUSTED})
        refused = await _ws_operation(url, {"query": "{ products(first: 1) { totalCount } }"})
    assert allowed["type"] == "next", allowed
    assert refused["type"] == "error", refused
    assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
