"""Depth and aliases of a document, checked in time linear in its size: each operation and
fragment is read once and each fragment's depth and alias count are kept (Strawberry's
limiters walked every spread of a fragment again, exponential on fragment bombs), plus
graphql-core's overlapping-fields check on a work budget."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    SKIP,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValidationContext,
    VisitorAction,
)
from graphql.validation import ASTValidationRule, OverlappingFieldsCanBeMergedRule
from graphql.validation.validate import ValidationAbortedError

from graphql_api.errors import ErrorCode


@dataclass
class _Definition:
    """What one operation or fragment holds by itself, its spreads not followed."""

    height: int = 0  # the deepest level of a selection, from 0 at the top
    aliases: int = 0
    spreads: list[tuple[str, int | None]] = field(default_factory=list)  # name, level
    first_at_level: list[Node] = field(default_factory=list)


def _definition(selection_set: SelectionSetNode) -> tuple[_Definition, int]:
    """One definition read once, without recursion (the parser allows deep nesting). Levels
    are counted as Strawberry's QueryDepthLimiter counts them: a field's selections are one
    level below it, fragments and inline fragments add none, and nothing below an
    introspection field (`__schema`, `__type`) counts, though its aliases do."""
    own = _Definition()
    visited = 0
    # Iterators on a stack: selections are read in the document's order, so the first
    # selection at each level is the first in the text.
    stack: list[tuple[Iterator[SelectionNode], int | None]] = [(iter(selection_set.selections), 0)]
    while stack:
        selections, level = stack[-1]
        selection = next(selections, None)
        if selection is None:
            stack.pop()
            continue
        visited += 1
        if level is not None:
            own.height = max(own.height, level)
            if len(own.first_at_level) == level:  # levels grow one at a time
                own.first_at_level.append(selection)
        if isinstance(selection, FragmentSpreadNode):
            own.spreads.append((selection.name.value, level))
        elif isinstance(selection, InlineFragmentNode):
            stack.append((iter(selection.selection_set.selections), level))
        elif isinstance(selection, FieldNode):
            own.aliases += selection.alias is not None
            if selection.selection_set is not None:
                counted = level is not None and not selection.name.value.startswith("__")
                below = level + 1 if counted and level is not None else None
                stack.append((iter(selection.selection_set.selections), below))
    return own, visited


class DocumentMeasure:
    """The depth and alias count of each operation of a document, with every definition read
    once and each fragment's totals kept: a fragment spread twice in each of 30 nested
    fragments costs 30 reads, not 2**30. Depth and aliases mean what Strawberry's
    QueryDepthLimiter and MaxAliasesLimiter count (aliases are counted once per spread), so
    their limits and messages stay the same. A fragment still being measured counts 0:
    only a cycle meets one, and NoFragmentCycles refuses cycles. Unknown fragments count 0
    (KnownFragmentNames refuses them)."""

    def __init__(self, document: DocumentNode) -> None:
        self.visited = 0
        self._fragments = {
            d.name.value: d.selection_set
            for d in reversed(document.definitions)
            if isinstance(d, FragmentDefinitionNode)
        }
        self._own: dict[str, _Definition] = {}
        self._totals: dict[str, tuple[int, int]] = {}

    def _read(self, name: str, selection_set: SelectionSetNode) -> _Definition:
        own, visited = _definition(selection_set)
        self.visited += visited
        self._own[name] = own
        return own

    def totals(self, operation: OperationDefinitionNode) -> tuple[int, int]:
        """(depth, aliases) of the operation, its fragments followed."""
        own = self._read("", operation.selection_set)
        return self._combine(own)

    def _combine(self, own: _Definition) -> tuple[int, int]:
        height, aliases = own.height, own.aliases
        for name, level in own.spreads:
            fragment_height, fragment_aliases = self._fragment(name)
            if level is not None:
                height = max(height, level + fragment_height)
            aliases += fragment_aliases
        return height, aliases

    def _fragment(self, root: str) -> tuple[int, int]:
        """A fragment's totals, its spreads resolved depth first with an explicit stack."""
        if root in self._totals or root not in self._fragments:
            return self._totals.get(root, (0, 0))
        self._totals[root] = (0, 0)  # in progress
        path = [(root, iter(self._read(root, self._fragments[root]).spreads))]
        while path:
            name, spreads = path[-1]
            for spread, _level in spreads:
                if spread in self._fragments and spread not in self._totals:
                    self._totals[spread] = (0, 0)
                    path.append((spread, iter(self._read(spread, self._fragments[spread]).spreads)))
                    break
            else:
                path.pop()
                self._totals[name] = self._combine(self._own[name])
        return self._totals[root]

    def too_deep(self, operation: OperationDefinitionNode, max_depth: int) -> Node:
        """A selection past `max_depth` (the error's location), found by following the
        deepest spreads; call after totals()."""
        own, room, seen = self._own[""], max_depth, set()
        while True:
            if own.height > room:
                return own.first_at_level[room + 1]
            for name, level in own.spreads:
                if (
                    level is not None
                    and name not in seen
                    and level + self._fragment(name)[0] > room
                ):
                    seen.add(name)
                    own, room = self._own[name], room - level
                    break
            else:
                return operation


def document_limits_rule(max_depth: int, max_aliases: int) -> type[ASTValidationRule]:
    """One validation rule for the depth and the alias count, in linear time (see
    DocumentMeasure), in place of Strawberry's QueryDepthLimiter and MaxAliasesLimiter,
    which expand every spread (a 30-level fragment bomb spun for minutes). Their messages,
    with QUERY_TOO_COMPLEX. It runs when the document is entered, before any other rule
    walks it, and a refused document aborts the validation (the last error is raised as
    graphql-core's own ValidationAbortedError): nothing else spends time on it."""

    class DocumentLimits(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> VisitorAction:
            measure = DocumentMeasure(node)
            errors, aliases = [], 0
            for operation in node.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                depth, operation_aliases = measure.totals(operation)
                aliases += operation_aliases
                if depth > max_depth:
                    name = operation.name.value if operation.name else "anonymous"
                    errors.append(
                        _too_complex(
                            f"'{name}' exceeds maximum operation depth of {max_depth}",
                            measure.too_deep(operation, max_depth),
                        )
                    )
            if aliases > max_aliases:
                errors.append(_too_complex(f"{aliases} aliases found. Allowed: {max_aliases}"))
            if errors:
                for error in errors[:-1]:
                    self.report_error(error)
                raise errors[-1]
            return SKIP

    return DocumentLimits


def _too_complex(message: str, node: Node | None = None) -> ValidationAbortedError:
    return ValidationAbortedError(
        message, node, extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value}
    )


class BoundedOverlapCheck(OverlappingFieldsCanBeMergedRule):
    """graphql-core's OverlappingFieldsCanBeMerged on a smaller budget. Comparing the
    fields that share a response name is quadratic: 181 copies of `product(id: 1) { name id
    price }` (2,000 tokens, no alias, depth 1) took it 250 ms to 950 ms within its own
    budget of 500,000 units; with 5,000 it stops within about 15 ms. Real documents spend
    far less (a storefront page 16, one with fragments spread three times over 168); past
    `budget` the validation stops with QUERY_TOO_COMPLEX."""

    budget = 5_000

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = self.budget

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            raise _too_complex(
                "this document has too many fields of the same name to check: "
                "ask for each field once"
            ) from None


def validation_rules(
    stock: tuple[type[ASTValidationRule], ...], limits: type[ASTValidationRule]
) -> tuple[type[ASTValidationRule], ...]:
    """Our limits first, then the stock rules with the overlap check bounded."""
    return (
        limits,
        *(
            BoundedOverlapCheck if rule is OverlappingFieldsCanBeMergedRule else rule
            for rule in stock
        ),
    )
