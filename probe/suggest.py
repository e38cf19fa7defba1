""""Did you mean ...?" for a name that is not among the known ones (methods, modules, targets, fields,
attributes, values, emulator users): difflib's close matches, case-insensitive."""

from __future__ import annotations

from typing import Iterable


def close_match(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, or None when none is close (difflib ratio >= 0.6)."""
    import difflib  # only on an error path: a check's start-up does not load it

    names = [k for k in known if k != name]
    by_lower = {k.lower(): k for k in names}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return by_lower[match[0]] if match else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` to append to an error message, or ``""``."""
    match = close_match(name, known)
    return f"; did you mean {match!r}?" if match else ""
