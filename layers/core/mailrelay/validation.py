"""One way to say what pydantic refused: each problem as a field path ("to[0].email") and its message."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) per error; dict keys' own errors ("[key]") name the dict."""
    found = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in error["loc"] if p != "[key]")
        found.append((field_path(loc), str(error["msg"]).removeprefix("Value error, ")))
    return found


def describe(exc: ValidationError, root: str = "") -> str:
    """Every problem on one line: ``root`` names what was validated (``upstreams`` -> ``upstreams[0].port``)."""
    parts = []
    for path, message in problems(exc):
        where = root + ("" if not path or path.startswith("[") or not root else ".") + path
        parts.append(f"{where or 'settings'}: {message}")
    return "; ".join(parts)
