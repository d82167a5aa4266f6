"""JSON from strangers: bodies, `?metadata=`, the search page's `parts`.

Python's json module accepts what PostgreSQL and our own code cannot use: numbers that overflow
to infinity (`1e400`), lone UTF-16 surrogates (`"\\udc00"`, which cannot be encoded as UTF-8), and
nesting deep enough to exhaust the interpreter's recursion limit. Each of those used to surface
as a 500 somewhere downstream; here they are refused at the door with a message.
"""

import json
import math
import re

MAX_DEPTH = 32
# Lone surrogates only: a valid pair arrives from json.loads already combined into one code point.
_SURROGATE = re.compile("[\ud800-\udfff]")


class UntrustedJSONError(ValueError):
    """JSON that cannot be stored or searched; the message says why."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJSONError(f"the number {text[:40]} is out of range")
    return value


def _no_constants(name: str):
    raise UntrustedJSONError(f"{name} is not a number JSON allows")


def loads(text: str | bytes):
    """Parse and check; raise UntrustedJSONError with a message a client can act on."""
    # Floats parsed by the C scanner (a Python call per number costs as much as the rest of the parse for a query
    # vector); check() then finds one that overflowed, and a second parse names it.
    value = _parse(text, None)
    try:
        check(value)
    except UntrustedJSONError:
        _parse(text, _finite)
        raise
    return value


def _parse(text: str | bytes, parse_float):
    try:
        return json.loads(text, parse_float=parse_float, parse_constant=_no_constants)
    except RecursionError:
        raise UntrustedJSONError(f"the JSON is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except UnicodeDecodeError:
        raise UntrustedJSONError("the JSON is not valid UTF-8") from None
    except ValueError as exc:
        if isinstance(exc, UntrustedJSONError):
            raise
        raise UntrustedJSONError(f"not valid JSON ({exc})") from None


def check(value) -> None:
    """Depth, finiteness and Unicode of an already-parsed value, without recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise UntrustedJSONError("text contains an unpaired UTF-16 surrogate, which is not valid Unicode")
            continue
        if isinstance(node, float) and not math.isfinite(node):
            raise UntrustedJSONError("numbers must be finite")
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise UntrustedJSONError(f"the JSON is nested too deeply (at most {MAX_DEPTH} levels)")
            if isinstance(node, list) and _finite_numbers(node):
                continue  # a query vector: no element to look at one by one
            if isinstance(node, dict):
                stack.extend((key, depth + 1) for key in node)
                node = node.values()
            for child in node:
                kind = type(child)
                if kind is float:  # numbers inline: a query vector is hundreds of them
                    if not math.isfinite(child):
                        raise UntrustedJSONError("numbers must be finite")
                elif kind is not int and kind is not bool and child is not None:
                    stack.append((child, depth + 1))


def _finite_numbers(values: list) -> bool:
    """Whether every element is a finite number, in one pass in C: a sum is finite only if every term is (an
    overflowing sum of finite terms, or anything but numbers, answers False and the caller looks at each)."""
    try:
        total = sum(values)
    except (TypeError, OverflowError):
        return False
    return type(total) is int or math.isfinite(total)


def has_surrogates(text: str) -> bool:
    return bool(_SURROGATE.search(text))
