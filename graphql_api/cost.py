"""Query cost, computed from the document before anything runs.

Every field costs 1 (`__typename` is free). A field that takes a `first` argument returns a
page of up to `first` items, so everything selected under it counts `first` times. Other
lists (the errors of a payload, introspection) count once: they are bounded by the schema,
not by the client. Fragments are costed once each, so a document cannot make this walk
expensive however it nests them.
"""

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
)
from graphql.pyutils import Undefined
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

PAGE_ARGUMENT = "first"


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of the operation that would run; 0 when there is none to run (the
    document's own validation reports that)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    walker = _Walker(schema, document, variables or {})
    return walker.selection_cost(root, operation.selection_set)


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]
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
            if isinstance(selection, FieldNode):
                total += self.field_cost(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_cost(target or parent, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment_cost(selection.name.value)
        return total

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
        argument = definition.args.get(PAGE_ARGUMENT)
        if argument is None:
            return 1
        value: object = argument.default_value
        for given in node.arguments or ():
            if given.name.value != PAGE_ARGUMENT:
                continue
            if isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                value = self.variables.get(given.value.name.value, argument.default_value)
        if value is Undefined or value is None or isinstance(value, bool):
            return 1
        if not isinstance(value, int):
            return 1  # coercion refuses it before anything runs
        return max(0, value)
