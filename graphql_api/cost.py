"""Query cost, computed from the document before anything runs.

Every field costs 1 (`__typename` is free). A field that takes a `first` argument returns a
page of up to `first` items, so everything selected under it counts `first` times. Other
lists (the errors of a payload, introspection) count once: they are bounded by the schema,
not by the client. Fragments are costed once each, so a document cannot make this walk
expensive however it nests them.

The operation is costed as it will execute: `first` is the value the resolver will get
(the literal, the variable sent, the variable's default in the operation, or the
argument's default), and what `@skip`/`@include` leave out costs nothing. Fields that
share a response name are merged when they run but costed each: the cost may be above
what runs, never below.
"""

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionNode,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

PAGE_ARGUMENT = "first"


class Operation:
    """The operation a request would run, with its variables coerced once, for everything
    read from it before execution: its cost and the root field that runs first."""

    def __init__(
        self, root: GraphQLObjectType, selections: SelectionSetNode, walker: "_Walker"
    ) -> None:
        self.root = root
        self._selections = selections
        self._walker = walker

    @classmethod
    def of(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> "Operation | None":
        """None when nothing would run: no such operation (the document's own validation
        reports that) or its variables are refused (then nothing runs either)."""
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return None
        root = schema.get_root_type(operation.operation)
        if root is None:
            return None
        coerced = get_variable_values(
            schema, operation.variable_definitions or (), dict(variables or {}), max_errors=1
        )
        if isinstance(coerced, list):
            return None
        return cls(root, operation.selection_set, _Walker(schema, document, coerced))

    def cost(self) -> int:
        return self._walker.selection_cost(self.root, self._selections)

    def first_field(self) -> FieldNode | None:
        """The root field that execution resolves first (fields in document order,
        fragments where they are spread, what `@skip`/`@include` leave out skipped). A
        mutation's root fields run one after another, so this one runs before any other
        could fail the operation."""
        return self._walker.first_field(self._selections, set())


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of the operation that would run; 0 when none would."""
    operation = Operation.of(schema, document, operation_name, variables)
    return 0 if operation is None else operation.cost()


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: VariableValues
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.fragment_costs: dict[str, int] = {}

    def selection_cost(self, parent: GraphQLNamedType, selections: SelectionSetNode) -> int:
        total = 0
        for selection in selections.selections:
            if not self.included(selection):
                continue
            if isinstance(selection, FieldNode):
                total += self.field_cost(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_cost(target or parent, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment_cost(selection.name.value)
        return total

    def first_field(self, selections: SelectionSetNode, seen: set[str]) -> FieldNode | None:
        for selection in selections.selections:
            if not self.included(selection):
                continue
            if isinstance(selection, FieldNode):
                return selection
            found = None
            if isinstance(selection, InlineFragmentNode):
                found = self.first_field(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    found = self.first_field(fragment.selection_set, seen)
            if found is not None:
                return found
        return None

    def included(self, node: SelectionNode) -> bool:
        """What execution's should_include_node decides: @skip wins over @include."""
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            definition = GraphQLSkipDirective if name == "skip" else GraphQLIncludeDirective
            try:
                condition = get_argument_values(definition, directive, self.variables)["if"]
            except GraphQLError:
                continue  # execution refuses it; cost it as included
            if condition == (name == "skip"):
                return False
        return True

    def fragment_cost(self, name: str) -> int:
        if name not in self.fragment_costs:
            self.fragment_costs[name] = 0  # a cycle (invalid anyway) costs nothing more
            fragment = self.fragments.get(name)
            if fragment is not None:
                target = self.schema.get_type(fragment.type_condition.name.value)
                if target is not None:
                    self.fragment_costs[name] = self.selection_cost(target, fragment.selection_set)
        return self.fragment_costs[name]

    def field_cost(self, parent: GraphQLNamedType, node: FieldNode) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        definition = self.definition(parent, name)
        if definition is None:  # validation refuses unknown fields
            return 1
        children = 0
        if node.selection_set is not None:
            children = self.selection_cost(get_named_type(definition.type), node.selection_set)
        return 1 + self.page_size(definition, node) * children

    def definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            field: GraphQLField | None = parent.fields.get(name)
            return field
        return None

    def page_size(self, definition: GraphQLField, node: FieldNode) -> int:
        """The `first` the resolver gets, as execution coerces it."""
        if PAGE_ARGUMENT not in definition.args:
            return 1
        try:
            value = get_argument_values(definition, node, self.variables).get(PAGE_ARGUMENT)
        except GraphQLError:
            return 1  # execution refuses the arguments before the resolver runs
        if not isinstance(value, int) or isinstance(value, bool):
            return 1
        return max(0, value)
