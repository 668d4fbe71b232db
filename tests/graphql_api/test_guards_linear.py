"""Fragment bombs and their kin are refused (or answered) after work that grows with the
document, not with what its fragments expand to. Work is counted (selections read, Python
calls made), never timed."""

import sys
from collections.abc import Callable, Iterator
from types import FrameType, SimpleNamespace
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    parse,
    specified_rules,
    validate,
)
from graphql.language import Lexer, Source, TokenKind
from graphql.validation import ASTValidationRule
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.extensions.max_aliases import count_fields_with_alias
from strawberry.extensions.query_depth_limiter import QueryDepthLimiter

from graphql_api.document_limits import DocumentMeasure
from graphql_api.guards import QueryGuards
from graphql_api.schema import build_schema
from graphql_api.strawberry_internals import graphql_schema
from tests.conftest import GraphQL, error_codes

MAX_TOKENS = QueryGuards().max_tokens
# The whole validation, our rules and graphql-core's, makes at most this many Python calls
# per token of the document (the worst family below makes about 60).
CALLS_PER_TOKEN = 100


def _tokens(document: str) -> int:
    lexer, count = Lexer(Source(document)), 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def _chain(
    body: str, *, on: str = "Query", root: str = "{ ...F0 }", last: str = "__typename"
) -> Callable[[int], str]:
    """`root`, then fragments F0..F(n-1) whose `body` spreads F{next}, and a last one."""

    def document(levels: int) -> str:
        fragments = " ".join(
            f"fragment F{i} on {on} {{ {body.format(next=i + 1)} }}" for i in range(levels)
        )
        return f"{root} {fragments} fragment F{levels} on {on} {{ {last} }}"

    return document


BOMBS: dict[str, Callable[[int], str]] = {
    "binary": _chain("...F{next} ...F{next}"),
    "wide": _chain(" ".join(["...F{next}"] * 8)),
    "aliases": _chain("a: __typename b: __typename ...F{next} ...F{next}"),
    "inline fragments": _chain("... on Query {{ ...F{next} }} ... {{ ...F{next} }}"),
    "directives": _chain("...F{next} @include(if: true) ...F{next} @skip(if: false)"),
    "nested selections": _chain(
        "product {{ ...F{next} }} again: product {{ ...F{next} }}",
        on="Reservation",
        root="{ reservation(id: 1) { ...F0 } }",
        last="id",
    ),
    "fields beside spreads": _chain(
        "product(id: 1) {{ name }} reservation(id: 1) {{ product {{ name }} }} "
        "...F{next} ...F{next}"
    ),
    "mutual recursion": lambda n: (
        "{ ...F0 } "
        + " ".join(
            f"fragment F{i} on Query {{ ...F{(i + 1) % n} ...F{(i + 2) % n} }}" for i in range(n)
        )
    ),
    "one name, other arguments": lambda n: (
        "{ " + " ".join(f"product(id: {i}) {{ id }}" for i in range(n)) + " }"
    ),
    "one field many times": lambda n: "{ " + "product(id: 1) { name id price } " * n + "}",
    "typename many times": lambda n: "{ " + "__typename " * n + "}",
}


def _largest(bomb: Callable[[int], str]) -> str:
    """The bomb at the size that just fits the token limit (its tokens grow with its size:
    a binary search, where a size at a time lexed ~2,000 documents for the widest)."""
    fits, over = 2, 4
    while _tokens(bomb(over)) <= MAX_TOKENS:
        fits, over = over, over * 2
    while over - fits > 1:
        middle = (fits + over) // 2
        fits, over = (middle, over) if _tokens(bomb(middle)) <= MAX_TOKENS else (fits, middle)
    return bomb(fits)


def _guard_rules() -> tuple[type[ASTValidationRule], ...]:
    """The validation rules the query guard installs, taken from the extension itself."""
    guard = QueryGuards().extensions()[0]()
    execution = SimpleNamespace(parse_options={}, validation_rules=tuple(specified_rules))
    guard.execution_context = execution
    hooks: Iterator[None] = guard.on_operation()
    next(hooks)
    rules: tuple[type[ASTValidationRule], ...] = execution.validation_rules
    return rules


class TooManyCalls(Exception):
    pass


def _validate_counting_calls(document: str, budget: int) -> tuple[list[GraphQLError], int]:
    """Validates as the app does, counting Python calls; stops the work past `budget` (the
    old limiters would otherwise spin for minutes)."""
    schema = graphql_schema(build_schema())
    rules = _guard_rules()
    ast = parse(document, max_tokens=MAX_TOKENS)
    calls = 0

    def count(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > budget:
            raise TooManyCalls

    sys.settrace(count)
    try:
        errors = validate(schema, ast, rules)
    finally:
        sys.settrace(None)
    return errors, calls


@pytest.mark.parametrize("name", BOMBS)
def test_validating_a_bomb_is_linear_in_its_tokens(name: str) -> None:
    document = _largest(BOMBS[name])
    budget = CALLS_PER_TOKEN * _tokens(document)

    _errors, calls = _validate_counting_calls(document, budget)

    assert calls <= budget


@pytest.mark.parametrize("name", BOMBS)
def test_each_selection_is_read_once(name: str) -> None:
    document = parse(_largest(BOMBS[name]), max_tokens=MAX_TOKENS)
    measure = DocumentMeasure(document)

    for operation in document.definitions:
        if isinstance(operation, OperationDefinitionNode):
            measure.totals(operation)

    assert 0 < measure.visited <= _selections(document)


def _selections(document: DocumentNode) -> int:
    """Fields, spreads and inline fragments written in the document."""
    count = 0
    stack = [
        d.selection_set for d in document.definitions if isinstance(d, ExecutableDefinitionNode)
    ]
    while stack:
        for selection in stack.pop().selections:
            count += 1
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
    return count


# Random fragment graphs without cycles or unknown names, small enough that Strawberry's
# own limiters (which expand every spread) finish: our depth and alias counts are theirs.
_FIELDS = st.sampled_from(["a", "b", "__typename", "__schema", "c"])


@st.composite
def _documents(draw: st.DrawFn) -> str:
    fragments = draw(st.integers(0, 5))

    def selections(owner: int, room: int) -> str:
        parts = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["field", "field", "inline", "spread"]))
            if kind == "spread" and owner + 1 < fragments:
                parts.append(f"...F{draw(st.integers(owner + 1, fragments - 1))}")
            elif kind == "inline" and room > 0:
                parts.append(f"... on Query {{ {selections(owner, room - 1)} }}")
            else:
                alias = draw(st.sampled_from(["", "", "x: "]))
                nested = room > 0 and draw(st.booleans())
                below = f" {{ {selections(owner, room - 1)} }}" if nested else ""
                parts.append(f"{alias}{draw(_FIELDS)}{below}")
        return " ".join(parts)

    definitions = [f"fragment F{i} on Query {{ {selections(i, 3)} }}" for i in range(fragments)]
    operations = [f"query Q{i} {{ {selections(-1, 3)} }}" for i in range(draw(st.integers(1, 2)))]
    return " ".join(operations + definitions)


@settings(max_examples=300, deadline=None)
@given(_documents())
def test_depth_and_aliases_are_counted_as_strawberry_counts_them(text: str) -> None:
    document = parse(text)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    strawberry_depths: dict[str, int] = {}
    depth_rule = QueryDepthLimiter(max_depth=10_000, callback=strawberry_depths.update)
    validate(graphql_schema(build_schema()), document, depth_rule.validation_rules)

    measure = DocumentMeasure(document)
    ours = {op.name.value: measure.totals(op) for op in operations if op.name}

    assert {name: depth for name, (depth, _) in ours.items()} == strawberry_depths
    assert sum(aliases for _, aliases in ours.values()) == sum(
        count_fields_with_alias(op, fragments) for op in operations
    )


# Over HTTP, through the whole app.


def _bomb(levels: int, body: str = "...F{next} ...F{next}") -> str:
    """The bomb of the issue: F(levels-1) spreads F(levels), which does not exist."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ {body.format(next=i + 1)} }}" for i in range(levels)
    )
    return "query { ...F0 } " + fragments


async def test_the_fragment_bomb_gets_a_coded_validation_error(gql: GraphQL) -> None:
    body = await gql(_bomb(30))

    # One error per spread of the missing fragment: F29 spreads it twice.
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"] * 2
    assert {error["message"] for error in body["errors"]} == {"Unknown fragment 'F30'."}
    assert (await gql("{ __typename }"))["data"] == {"__typename": "Query"}


async def test_a_complete_fragment_bomb_is_answered(gql: GraphQL) -> None:
    body = await gql(_bomb(30) + " fragment F30 on Query { __typename }")

    assert body["data"] == {"__typename": "Query"}


async def test_a_fragment_bomb_with_aliases_is_too_complex(gql: GraphQL) -> None:
    body = await gql(
        _bomb(30, "a: __typename ...F{next} ...F{next}") + " fragment F30 on Query { __typename }"
    )

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["message"] == f"{2**30 - 1} aliases found. Allowed: 15"


async def test_a_fragment_bomb_too_deep_is_too_complex(gql: GraphQL) -> None:
    document = (
        "query Deep { ...F0 } "
        + " ".join(
            f"fragment F{i} on Query {{ a {{ ...F{i + 1} }} b {{ ...F{i + 1} }} }}"
            for i in range(30)
        )
        + " fragment F30 on Query { __typename }"
    )

    body = await gql(document)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["message"] == "'Deep' exceeds maximum operation depth of 10"
    # It points at the first selection past the limit: 11 fields down, in F10.
    column = document.index("fragment F10 ") + len("fragment F10 on Query { a { ") + 1
    assert body["errors"][0]["locations"] == [{"line": 1, "column": column}]


async def test_an_unknown_fragment_is_a_coded_validation_error(gql: GraphQL) -> None:
    body = await gql("{ ...Nope }")

    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert body["errors"][0]["message"] == "Unknown fragment 'Nope'."


async def test_many_fields_of_one_name_are_too_complex(gql: GraphQL) -> None:
    body = await gql(_largest(BOMBS["one field many times"]))

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "too many fields of the same name" in body["errors"][0]["message"]
