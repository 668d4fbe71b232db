"""What a query may ask for, checked before any resolver runs: tokens, depth and aliases
(in one pass over the document that reads each fragment once), the work graphql-core's
OverlappingFieldsCanBeMerged may spend, a maximum cost per query, and each caller's cost
budget. Plus the per-user limit on the writes that take stock, as a field extension.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from graphql import (
    DocumentNode,
    ExecutionResult,
    OperationDefinitionNode,
)
from graphql.validation import ASTValidationRule
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.types import Info
from strawberry.types.graphql import OperationType

from core.settings import Settings
from graphql_api.context import Context
from graphql_api.cost import Operation
from graphql_api.document_limits import document_limits_rule, validation_rules
from graphql_api.errors import ApiError, ErrorCode
from graphql_api.ratelimit import (
    address_limit,
    pending_address_count,
    refusal_message,
    unavailable,
)
from graphql_api.strawberry_internals import graphql_schema, provided_operation_name
from ratelimit import (
    BucketStatus,
    Count,
    RateLimits,
    RateLimitUnavailable,
    SlidingWindow,
    WindowDecision,
)
from telemetry import RATE_LIMITED


@dataclass(frozen=True)
class QueryGuards:
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2_000
    max_cost: int = 2_000

    @classmethod
    def from_settings(cls, settings: Settings) -> "QueryGuards":
        return cls(
            max_depth=settings.query_max_depth,
            max_aliases=settings.query_max_aliases,
            max_tokens=settings.query_max_tokens,
            max_cost=settings.query_max_cost,
        )

    def extensions(self) -> list[Callable[[], Any]]:
        """One factory: every request gets its own instance. The validation rules are made
        once here: the validation cache is keyed by the rule classes, so new classes for
        every request would make every request miss it."""
        limits = document_limits_rule(self.max_depth, self.max_aliases)
        return [lambda: QueryGuard(self, limits)]


class QueryGuard(SchemaExtension):
    """Everything checked before a resolver runs, in one extension (each extension costs
    every request a few hooks):

    - the token limit (the parser stops there), the depth and alias limits and the bounded
      overlap check, all QUERY_TOO_COMPLEX;
    - one operation per request unless `operationName` picks one (the GraphQL spec's
      GetOperation; Strawberry alone runs the first, so a second mutation could slip past
      anything that looks only at the named one);
    - the maximum cost (QUERY_TOO_COMPLEX), then the caller's budget (RATE_LIMITED with
      retryAfter when it is short), both reported in `extensions.cost` as Shopify does.
    """

    def __init__(self, guards: QueryGuards, limits: type[ASTValidationRule]) -> None:
        self.max_tokens = guards.max_tokens
        self.max_cost = guards.max_cost
        self.limits = limits
        self.cost: int | None = None
        self.status: BucketStatus | None = None

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = self.max_tokens
        execution.validation_rules = validation_rules(execution.validation_rules, self.limits)
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        _counted_writes.set({})
        execution = self.execution_context
        assert execution.graphql_document is not None
        refusal = self._several_operations(execution.graphql_document)
        if refusal is None:
            operation = Operation.of(
                graphql_schema(execution.schema),
                execution.graphql_document,
                execution.operation_name,
                execution.variables,
            )
            self.cost = max(1, operation.cost() if operation else 0)
            refusal = await self._refusal(execution.context, execution.operation_type, operation)
        if refusal is not None:
            execution.result = ExecutionResult(data=None, errors=[refusal])
        yield

    def _several_operations(self, document: DocumentNode) -> ApiError | None:
        if len(document.definitions) < 2:
            return None
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > 1 and provided_operation_name(self.execution_context) is None:
            return ApiError(
                ErrorCode.GRAPHQL_VALIDATION_FAILED,
                "the document has several operations: say which to run with operationName",
            )
        return None

    async def _refusal(
        self, context: Context, operation_type: OperationType, operation: Operation | None
    ) -> ApiError | None:
        assert self.cost is not None
        if self.cost > self.max_cost:
            return ApiError(
                ErrorCode.QUERY_TOO_COMPLEX,
                f"this query costs {self.cost}, over the maximum of {self.max_cost} per "
                "query: ask for fewer items (a smaller `first`) or fewer fields",
                cost=self.cost,
                maximumCost=self.max_cost,
            )
        limits = context.services.rate_limits
        if not limits.enabled:
            return None
        # All of the request's limits in one round trip, in the order they were counted
        # one by one: the address (unless already counted: a WebSocket), the cost budget,
        # then the user's window of the first field, if it has one.
        address = pending_address_count(context.connection.scope) if context.connection else None
        by_address = address_limit(limits, address.address) if address else None
        by_cost = limits.cost.count(context.rate_identity(), self.cost)
        write = self._first_write(context, operation_type, operation)
        by_user = user_write_limit(limits, *write[1:]) if write else None
        counts = [c for c in (by_address, by_cost, by_user) if c is not None]
        try:
            counted = await limits.count(counts)
        except RateLimitUnavailable as exc:
            if address is not None:
                address.settle(None)
                unavailable(exc)
            if operation_type == OperationType.QUERY:
                return None  # reads stay up; writes need Redis anyway
            return _writes_refused()
        if address is not None and by_address is not None:
            decision = counted.of(by_address)
            address.settle(decision)
            if decision is not None and not decision.allowed:
                # IpRateLimit answers the request with its 429 (and counts the refusal).
                return ApiError(
                    ErrorCode.RATE_LIMITED,
                    refusal_message(decision),
                    retryAfter=decision.retry_after,
                )
        self.status = counted.of(by_cost)
        assert self.status is not None
        if write is not None and by_user is not None:
            user_decision = counted.of(by_user)
            if user_decision is not None:
                _counted_writes.get()[write[0]] = (write[1], user_decision)
        if self.status.allowed:
            return None
        RATE_LIMITED.labels("cost").inc()
        return ApiError(
            ErrorCode.RATE_LIMITED,
            f"query cost budget exhausted: this query costs {self.cost} and "
            f"{self.status.available} points are left, restoring at "
            f"{self.status.restore_rate}/s; retry in {self.status.retry_after} s",
            retryAfter=self.status.retry_after,
        )

    def _first_write(
        self, context: Context, operation_type: OperationType, operation: Operation | None
    ) -> tuple[str, str, ObjectId] | None:
        """(response key, operation, user) when the mutation's first root field has a
        per-user window and the caller is signed in: the field that runs first, so it is
        counted with the request's other limits and finds its count made (see
        PerUserLimit). A later field with a window counts in its own round trip."""
        if operation_type != OperationType.MUTATION or operation is None:
            return None
        claims = context.valid_claims()
        if claims is None:
            return None
        node = operation.first_field()
        if node is None:
            return None
        field = self.execution_context.schema.get_field_for_type(
            node.name.value, operation.root.name
        )
        extensions = field.extensions if field is not None else ()
        limit = next((e for e in extensions if isinstance(e, PerUserLimit)), None)
        if limit is None:
            return None
        key = node.alias.value if node.alias else node.name.value
        return key, limit.operation, claims.user_id

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        status = self.status
        return {
            "cost": {
                "requestedQueryCost": self.cost,
                "maximumQueryCost": self.max_cost,
                "throttleStatus": None
                if status is None
                else {
                    "maximumAvailable": status.capacity,
                    "currentlyAvailable": status.available,
                    "restoreRate": status.restore_rate,
                },
            }
        }


def _writes_refused() -> ApiError:
    """Without Redis the limits cannot count: writes fail closed (reads go through)."""
    return ApiError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "rate limits are unavailable, so writes are refused for now: retry shortly",
    )


_counted_writes: ContextVar[dict[str, tuple[str, WindowDecision]]] = ContextVar("counted_writes")
"""Per operation (set by QueryGuard as it starts executing; each HTTP request and each
WebSocket operation runs in a task of its own): the per-user windows already counted, by
the response key of the root field they were counted for. Not on the Context, which one
WebSocket's operations share."""


def _user_window_key(operation: str, user: ObjectId) -> tuple[str, str]:
    """The per-user window's identity for `operation` calls of `user`, and its hash tag:
    the user's cost budget's (Context.rate_identity), so on a cluster the two are counted
    together."""
    return f"{operation}:{user}", f"user:{user}"


def user_write_limit(limits: RateLimits, operation: str, user: ObjectId) -> Count[WindowDecision]:
    """One `operation` call of `user` in the per-user window."""
    identity, slot = _user_window_key(operation, user)
    return limits.per_user_write.count(identity, slot=slot)


def refuse_if_full(decision: WindowDecision, label: str, what: str) -> None:
    """A full window is RATE_LIMITED (with retryAfter, limit, window)."""
    if not decision.allowed:
        RATE_LIMITED.labels(label).inc()
        raise ApiError(
            ErrorCode.RATE_LIMITED,
            f"too many {what}: at most {decision.limit} per "
            f"{decision.window_seconds} s; retry in {decision.retry_after} s",
            retryAfter=decision.retry_after,
            limit=decision.limit,
            window=decision.window_seconds,
        )


async def count_or_refuse(
    window: SlidingWindow, identity: str, label: str, what: str, slot: str | None = None
) -> None:
    """Count one call of `identity` in `window` (`slot`: its hash tag, see
    SlidingWindow.count); a full window is RATE_LIMITED (with retryAfter, limit, window)
    and a store that does not answer refuses the write."""
    try:
        decision = await window.hit(identity, slot)
    except RateLimitUnavailable:
        raise _writes_refused() from None
    refuse_if_full(decision, label, what)


class PerUserLimit(FieldExtension):
    """At most RATE_LIMIT_RESERVE_PER_USER calls of this field per user in any window of
    that length (each field counted on its own). A refused call is a RATE_LIMITED error
    with retryAfter, and the resolver does not run. Goes after the IsAuthenticated
    permission, which runs first.

    When the field is the mutation's first, QueryGuard has counted it already, with the
    request's other limits (one round trip for all): before the permission ran, so a
    call that the permission then refuses (a user deleted or disabled since the token was
    issued) is counted in that user's window too."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def resolve(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("PerUserLimit guards async resolvers only")

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Context, Any],
        **kwargs: Any,
    ) -> Any:
        context = info.context
        limits = context.services.rate_limits
        if limits.enabled:
            user = context.require_claims().user_id
            decision = self._counted(info)
            what = f"{self.operation} calls"
            if decision is None:  # not counted with the request's other limits
                identity, slot = _user_window_key(self.operation, user)
                await count_or_refuse(limits.per_user_write, identity, "user", what, slot)
            else:
                refuse_if_full(decision, "user", what)
        return await next_(source, info, **kwargs)

    def _counted(self, info: Info[Context, Any]) -> WindowDecision | None:
        if info.path.prev is not None:
            return None
        counted = _counted_writes.get(None)
        found = counted.pop(str(info.path.key), None) if counted is not None else None
        if found is None or found[0] != self.operation:
            return None
        return found[1]
