"""probe.names repeats, import-free, the constants the CLI's help names (issue 14: a cheap --help).

Each value must equal its owner's: this test is what keeps the copy honest (a method added
to the registry, a profile, an expectation, an acct status type must be added to probe/names.py).
"""

from __future__ import annotations

import pytest

from probe import method_acct, methods, model, names, outcome, verdict
from probe.radius import profiles

OWNERS = [
    ("METHOD_NAMES", methods.METHOD_NAMES),
    ("DEFAULT_METHOD", methods.DEFAULT_METHOD),
    ("TLS_VERSIONS", methods.TLS_VERSIONS),
    ("PROFILES", profiles.PROFILES),
    ("EXPECTATIONS", outcome.EXPECTATIONS),
    ("EXIT_UNKNOWN", outcome.EXIT_UNKNOWN),
    ("DEFAULT_WINDOW_S", model.DEFAULT_WINDOW_S),
    ("DEFAULT_SLOW_FRACTION", model.DEFAULT_SLOW_FRACTION),
    ("DEFAULT_CERT_WARN_DAYS", verdict.DEFAULT_CERT_WARN_DAYS),
    ("TRANSPORTS", model.TRANSPORTS),
    ("STATUS_TYPES", method_acct.STATUS_TYPES),
]


@pytest.mark.parametrize(("name", "owner_value"), OWNERS, ids=[n for n, _ in OWNERS])
def test_the_help_constant_equals_its_owner(name: str, owner_value: object) -> None:
    assert getattr(names, name) == owner_value, f"probe/names.py {name} differs from its owner's: update it"


def test_the_registry_is_the_methods_order() -> None:
    assert names.METHOD_NAMES == tuple(methods.METHODS)


def test_names_imports_nothing_of_the_probe() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(names.__file__).read_text())
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [getattr(n, "module", None) for n in imported] == ["__future__"]
