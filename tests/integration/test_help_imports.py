"""``radius-probe --help`` loads no RADIUS, method or verdict code (issue 14): behaviour, not time.

Printing a usage text used to import probe.methods (and with it probe.outcome, probe.model,
the RADIUS transport and packet code), probe.radius.profiles (the pyrad dictionary parser)
and probe.verdict only to name the methods, profiles and defaults in help strings. Those
constants now come from the import-free probe.names; this test lists the modules a --help
process loaded (a subprocess: this interpreter has them all loaded already).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import clean_env

CUT = ("probe.methods", "probe.model", "probe.outcome", "probe.verdict", "probe.diagnosis", "probe.radius",
       "probe.method_acct", "probe.checks", "pyrad", "logging", "asyncio")
RUNNER = ("import json, sys\nfrom probe.cli import main\n"
          "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
          "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}))\n")


def _help_modules(*args: str) -> tuple[str, int, set[str]]:
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=60,
                          env=clean_env())
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    report = json.loads(lines[-1])
    return done.stdout, report["exit"], set(report["modules"])


def _cut(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == c or m.startswith(c + ".") for c in CUT))


@pytest.mark.parametrize("args", [("--help",), ("auth", "--help"), ("acct", "--help"), ("run", "--help")],
                         ids=lambda a: " ".join(a))
def test_help_loads_no_radius_method_or_verdict_code(args: tuple[str, ...]) -> None:
    out, code, modules = _help_modules(*args)
    assert code == 0 and "usage: radius-probe" in out
    assert "probe.cli" in modules and "probe.names" in modules  # it did build the parser from probe.names
    assert _cut(modules) == []


def test_auth_help_still_names_every_method_and_profile() -> None:
    from probe.methods import METHOD_NAMES
    from probe.radius.profiles import PROFILES

    out, code, _modules = _help_modules("auth", "--help")
    flat = " ".join(out.split())
    assert code == 0
    assert f"one of {', '.join(METHOD_NAMES)}" in flat
    assert f"NAS attribute profile: {', '.join(PROFILES)}" in flat


def test_a_bad_method_is_still_one_line_naming_it() -> None:
    done = subprocess.run([sys.executable, "-m", "probe.cli", "auth", "127.0.0.1:1", "--secret", "s",
                           "--identity", "a", "--method", "papp"], capture_output=True, text=True, timeout=60,
                          env=clean_env())
    assert done.returncode == 3
    assert "papp" in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
