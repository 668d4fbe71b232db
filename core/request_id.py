"""The id of the request being served, for logs and masked errors (from X-Request-ID or new)."""

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("request_id", default="-")
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    return _request_id.get()


def adopt_request_id(incoming: str | None) -> str:
    """Use the caller's X-Request-ID when it is sane, else a new one; bind it to this task."""
    request_id = incoming if incoming and _VALID.match(incoming) else uuid.uuid4().hex
    _request_id.set(request_id)
    return request_id
