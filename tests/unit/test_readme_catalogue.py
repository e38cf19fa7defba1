"""The README's diagnosis catalogue names every code of probe/diagnosis.py (an entry added without a
README row fails here), and every method of the registry is in the README's method table."""

import re
from pathlib import Path

from probe.diagnosis import CATALOGUE
from probe.methods import METHOD_NAMES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    nxt = README.find("\n### ", start + len(title))
    stops = [x for x in (end, nxt) if x != -1]
    return README[start:min(stops)] if stops else README[start:]


def test_every_catalogue_code_has_a_readme_row() -> None:
    table = _section("### Diagnosis catalogue")
    documented = set(re.findall(r"`([a-z0-9_]+)`", table))
    missing = sorted(code for code in CATALOGUE if code not in documented)  # e.g. drop a row to see it fail
    assert not missing, f"README's diagnosis catalogue lacks {missing}"


def test_every_method_is_in_the_method_table() -> None:
    table = _section("## Methods and transports")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z0-9.-]+)`", row.split("|")[1])}
    missing = sorted(name for name in METHOD_NAMES if name not in named)
    assert not missing, f"README's method table lacks {missing}"
