"""The cost of a query is never below what it runs. Queries are generated from the schema,
then given what hypothesis-graphql does not write: `first` as variables with defaults (sent
or not), `@skip`/`@include` with literals and variables, inline and named fragments, and
aliases. Each one is costed, then executed in process against real Redis and MongoDB with a
middleware that records every field resolved.

What a unit of cost means (graphql_api/cost.py): each field once, and everything under a
field with `first` once per item of its page. Lists without `first` (a payload's errors,
introspection, sales by day) count once: they are bounded by the schema, not by the client.
So the fields that ran are counted by their path, with the index of an item kept under a
paged field and dropped in other lists.
"""

import asyncio
import inspect
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    execute,
    parse,
    print_ast,
    validate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from catalog.validation import ProductDraft
from graphql_api.context import Context
from graphql_api.cost import query_cost
from graphql_api.schema import build_schema
from graphql_api.strawberry_internals import graphql_schema
from services import Services

SCHEMA = graphql_schema(build_schema())
ROOT_FIELDS = ["products", "product", "reservation", "myReservations", "myOrders", "me"]
ROOT_FIELDS += ["salesStats"]
# Arguments with defaults that hypothesis-graphql always writes; often left out here, so
# that pages are full (a random cursor or filter leaves them empty).
OPTIONAL = {"after", "onSale", "status", "top"}
START = datetime(2026, 1, 1, tzinfo=UTC)
SCALARS = {
    "DateTime": st.integers(0, 400 * 86_400).map(
        lambda seconds: StringValueNode(value=(START + timedelta(seconds=seconds)).isoformat())
    ),
}


class Executed:
    """Middleware: the paths of the fields that ran, normalized as the cost counts them."""

    def __init__(self) -> None:
        self.paths: set[tuple[object, ...]] = set()
        self.paged: set[tuple[object, ...]] = set()

    def resolve(self, next_: Any, root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
        path: list[object] = []
        paged = False
        for key in info.path.as_list():
            if isinstance(key, int):
                path.append(key if paged else "*")
            else:
                path.append(key)
                paged = paged or tuple(path) in self.paged
        definition = info.parent_type.fields[info.field_name]
        if "first" in definition.args:
            self.paged.add(tuple(path))
        if info.field_name != "__typename":
            self.paths.add(tuple(path))
        return next_(root, info, **args)


class Disguise:
    """Rewrites a generated document with variables, directives, fragments and aliases,
    every choice drawn from hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.names = itertools.count()
        self.definitions: list[VariableDefinitionNode] = []
        self.fragments: list[FragmentDefinitionNode] = []
        self.variables: dict[str, Any] = {}

    def document(self, document: DocumentNode) -> DocumentNode:
        operation = document.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        selections = self.selections(operation.selection_set)
        if self.draw(st.booleans()):  # the root's selections in a named fragment
            name = f"Root{next(self.names)}"
            self.fragments.append(
                FragmentDefinitionNode(
                    name=NameNode(value=name),
                    type_condition=NamedTypeNode(name=NameNode(value="Query")),
                    selection_set=selections,
                )
            )
            spread = FragmentSpreadNode(name=NameNode(value=name), directives=())
            selections = SelectionSetNode(selections=(spread,))
        rewritten = OperationDefinitionNode(
            operation=operation.operation,
            name=operation.name,
            variable_definitions=tuple(self.definitions),
            directives=(),
            selection_set=selections,
        )
        return DocumentNode(definitions=(rewritten, *self.fragments))

    def selections(self, selection_set: SelectionSetNode) -> SelectionSetNode:
        rewritten: list[SelectionNode] = []
        for selection in selection_set.selections:
            assert isinstance(selection, FieldNode)
            rewritten.append(self.field(selection))
        if self.draw(st.booleans()):  # the last ones inside an inline fragment
            cut = self.draw(st.integers(0, len(rewritten) - 1))
            inline = InlineFragmentNode(
                type_condition=None,
                directives=self.directives(),
                selection_set=SelectionSetNode(selections=tuple(rewritten[cut:])),
            )
            rewritten = [*rewritten[:cut], inline]
        return SelectionSetNode(selections=tuple(rewritten))

    def field(self, node: FieldNode) -> FieldNode:
        alias = NameNode(value=f"a{next(self.names)}") if self.draw(st.booleans()) else None
        return FieldNode(
            alias=alias or node.alias,
            name=node.name,
            arguments=tuple(
                self.argument(argument)
                for argument in node.arguments or ()
                if argument.name.value not in OPTIONAL or self.draw(st.booleans())
            ),
            directives=self.directives(),
            selection_set=self.selections(node.selection_set) if node.selection_set else None,
        )

    def argument(self, node: ArgumentNode) -> ArgumentNode:
        if node.name.value != "first":
            return node
        # Small pages, and pages past the arguments' own defaults (20, 50): the cost of
        # those counts only if the variable's default is read.
        sizes = st.one_of(st.integers(0, 3), st.integers(40, 60))
        return ArgumentNode(name=node.name, value=self.variable("Int", sizes, IntValueNode))

    def directives(self) -> tuple[DirectiveNode, ...]:
        chosen = self.draw(st.lists(st.sampled_from(["skip", "include"]), max_size=2, unique=True))
        return tuple(
            DirectiveNode(
                name=NameNode(value=name),
                arguments=(
                    ArgumentNode(
                        name=NameNode(value="if"),
                        value=self.variable("Boolean", st.booleans(), BooleanValueNode)
                        if self.draw(st.booleans())
                        else BooleanValueNode(value=self.draw(st.booleans())),
                    ),
                ),
            )
            for name in chosen
        )

    def variable(self, type_name: str, values: st.SearchStrategy[Any], literal: Any) -> ValueNode:
        """A variable with a default in the operation, sent or not."""
        name = f"v{next(self.names)}"
        default = self.draw(values)
        value = literal(value=str(default) if type_name == "Int" else default)
        self.definitions.append(
            VariableDefinitionNode(
                variable=VariableNode(name=NameNode(value=name)),
                type=NonNullTypeNode(type=NamedTypeNode(name=NameNode(value=type_name))),
                default_value=value,
                directives=(),
            )
        )
        if self.draw(st.booleans()):
            self.variables[name] = self.draw(values)
        return VariableNode(name=NameNode(value=name))


# hypothesis-graphql favours small selections (a connection's totalCount): whole pages too.
PAGES = [
    "{ products(first: 20) { edges { cursor node { id name available } } "
    "pageInfo { hasNextPage endCursor } totalCount } }",
    "{ myReservations(first: 50) { id status product { name price } } "
    "myOrders(first: 50) { id total product { id } } me { id email } }",
    '{ salesStats(from: "2026-01-01T00:00:00+00:00", to: "2027-01-01T00:00:00+00:00") '
    "{ totals { revenue units } topProducts { name units } byDay { day units } } }",
]


@st.composite
def disguised(draw: st.DrawFn) -> tuple[DocumentNode, dict[str, Any]]:
    generated = draw(
        st.one_of(
            queries(SCHEMA, fields=ROOT_FIELDS, custom_scalars=SCALARS, print_ast=lambda ast: ast),
            st.sampled_from(PAGES).map(parse),
        )
    )
    assert isinstance(generated, DocumentNode)
    disguise = Disguise(draw)
    document = disguise.document(generated)
    return document, disguise.variables


async def _seed(services: Services, token: str) -> None:
    """Products enough for pages of 60 (twice the 20 of a page by default), three held and
    one bought, so the lists have items."""
    context = Context(services=services, connection=None, authorization=f"Bearer {token}")
    for number in range(57):
        draft = ProductDraft.parse(name=f"Extra {number}", price=Decimal("1.00"), total_stock=1)
        await services.catalog.create(draft)
    for name in ("Phone", "Case", "Charger"):
        draft = ProductDraft.parse(name=name, price=Decimal("9.99"), total_stock=50)
        product = str((await services.catalog.create(draft)).id)
        held = await execute(  # type: ignore[misc]
            SCHEMA,
            parse(
                f'mutation {{ reserve(productId: "{product}", quantity: 1) '
                "{ reservation { id } } }"
            ),
            context_value=context,
        )
        reservation = held.data["reserve"]["reservation"]["id"]
        if name == "Phone":
            await execute(  # type: ignore[misc]
                SCHEMA,
                parse(
                    f'mutation {{ checkout(reservationId: "{reservation}") {{ order {{ id }} }} }}'
                ),
                context_value=context,
            )


async def test_the_cost_is_never_below_what_runs(
    services: Services, customer_token: str, admin_token: str
) -> None:
    await _seed(services, customer_token)
    loop = asyncio.get_running_loop()
    tokens = [None, customer_token, admin_token]

    async def run(document: DocumentNode, variables: dict[str, Any], token: str | None) -> int:
        executed = Executed()
        context = Context(
            services=services,
            connection=None,
            authorization=f"Bearer {token}" if token else None,
        )
        result = execute(
            SCHEMA,
            document,
            context_value=context,
            variable_values=variables,
            middleware=[executed],
        )
        if inspect.isawaitable(result):
            result = await result
        assert not isinstance(result, list)  # ExecutionResult (one answer, no stream)
        return len(executed.paths)

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(disguised(), st.sampled_from(tokens))
    def cost_covers_execution(
        example: tuple[DocumentNode, dict[str, Any]], token: str | None
    ) -> None:
        document, variables = example
        assert validate(SCHEMA, document) == [], print_ast(document)
        cost = query_cost(SCHEMA, document, None, variables)

        ran = asyncio.run_coroutine_threadsafe(run(document, variables, token), loop).result()

        assert ran <= cost, (print_ast(document), variables)

    await asyncio.to_thread(cost_covers_execution)


# The same, on fixed documents.

PAGE = "edges { node { id name } }"  # per item: edges 1, node 1, two fields


def test_a_variables_default_is_the_page_it_asks_for() -> None:
    literal = parse(f"{{ products(first: 100) {{ {PAGE} }} }}")
    variable = parse(f"query($n: Int! = 100) {{ products(first: $n) {{ {PAGE} }} }}")

    assert query_cost(SCHEMA, literal) == 1 + 100 * 4
    assert query_cost(SCHEMA, variable) == 1 + 100 * 4
    assert query_cost(SCHEMA, variable, None, {"n": 3}) == 1 + 3 * 4


def test_what_skip_and_include_leave_out_costs_nothing() -> None:
    document = parse(
        f"query($s: Boolean = true) {{ products(first: 100) @skip(if: $s) {{ {PAGE} }} "
        "me { id } ...Orders @include(if: false) ... @skip(if: true) { me { email } } } "
        "fragment Orders on Query { myOrders { id } }"
    )

    assert query_cost(SCHEMA, document) == 2
    assert query_cost(SCHEMA, document, None, {"s": False}) == 2 + 1 + 100 * 4
