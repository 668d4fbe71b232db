"""Request JSON read strictly (RFC 8259): what Python's json module would let through or
fail on with something other than a 400 is refused here with a reason."""

import json
import math
from typing import Any

from cross_web import HTTPException

# Far more than any input type here nests, and far less than Python's parser can take
# (about 900 levels inside the server, which then fails with RecursionError).
MAX_JSON_DEPTH = 64


class _NotJson(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotJson(f"the number {text[:20]} is out of range")
    return number


def _bounded_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits(), 4,300 by default
        raise _NotJson(f"a number has {len(text)} digits, more than Python reads") from None


def _refusal(value: object, what: str) -> str | None:
    """Why `value` is refused, if it is: nested deeper than MAX_JSON_DEPTH, or holding a
    string (keys included) that is no Unicode text. JSON's \\ud800 escapes decode to lone
    surrogates, which UTF-8 (BSON, the logs) cannot encode."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth == MAX_JSON_DEPTH:
                return f"The {what} is nested more than {MAX_JSON_DEPTH} deep"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                return f"The {what} holds a string that is not Unicode text"
    return None


def decode_json_strictly(data: str | bytes, what: str) -> Any:
    """`data` decoded as JSON (RFC 8259), or an HTTPException 400 that says why not.

    Python's json module reads more than JSON (NaN, Infinity, numbers a double cannot hold)
    and fails with other exceptions than JSONDecodeError on digit strings over Python's
    limit (ValueError) and on deep nesting (RecursionError). Values nested more than
    MAX_JSON_DEPTH deep are refused too, at any depth the parser would have taken."""
    try:
        parsed = json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except _NotJson as exc:
        raise HTTPException(400, f"The {what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(400, f"The {what} is nested more than {MAX_JSON_DEPTH} deep") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise HTTPException(400, f"Unable to parse {what} as JSON") from exc
    if (refusal := _refusal(parsed, what)) is not None:
        raise HTTPException(400, refusal)
    return parsed
