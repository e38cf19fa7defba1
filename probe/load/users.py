"""Who authenticates in a load run: a template (``probe-{n}``), one fixed identity, or a CSV file.

A CSV file has a header row naming its columns: ``user`` (or ``identity`` /
``username``, required), and optionally ``password`` and ``expect``
(accept, reject, challenge or discard: that row's expected result).  Rows are
used in order and the list starts over when it runs out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..inputs import UsageError
from ..model import Secret
from ..outcome import EXPECTATIONS

__all__ = ["LoadUser", "Users", "read_users_csv", "template_users"]

USER_COLUMNS = ("user", "identity", "username")


@dataclass(frozen=True)
class LoadUser:
    identity: str
    password: Secret | None = None  # None: the command line's password
    expect: str | None = None  # None: the command line's --expect


@dataclass(frozen=True)
class Users:
    """The users of a run; ``get(i)`` is the i-th authentication's user (cycling)."""

    template: str | None = None
    count: int = 1
    rows: tuple[LoadUser, ...] = ()
    source: str = ""

    def get(self, i: int) -> LoadUser:
        if self.rows:
            return self.rows[i % len(self.rows)]
        assert self.template is not None
        return LoadUser(self.template.replace("{n}", str(i % self.count)))

    @property
    def distinct(self) -> int:
        return len(self.rows) if self.rows else (self.count if "{n}" in (self.template or "") else 1)

    def describe(self) -> str:
        if self.rows:
            return f"{len(self.rows)} user(s) from {self.source}"
        assert self.template is not None
        if "{n}" in self.template:
            last = self.template.replace("{n}", str(self.count - 1))
            return f"{self.count} users {self.template.replace('{n}', '0')} .. {last} (template {self.template})"
        return f"one user, {self.template}"


def template_users(template: str, count: int) -> Users:
    if "{" in template.replace("{n}", "") or "}" in template.replace("{n}", ""):
        raise UsageError(f"--identity {template!r}: the only placeholder is {{n}} (the user's number)")
    return Users(template=template, count=count, source="template")


def read_users_csv(path: str) -> Users:
    """The users of a CSV file (header row first); errors name the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--users-csv {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--users-csv {path}: not UTF-8 text") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise UsageError(f"--users-csv {path}: empty (a header row naming a user column, then one row per user)")
    names = [h.strip().lower() for h in header]
    column = next((names.index(c) for c in USER_COLUMNS if c in names), None)
    if column is None:
        raise UsageError(f"--users-csv {path}: no user column in the header {','.join(header)!r} "
                         f"(name one {', '.join(USER_COLUMNS)})")
    pw = names.index("password") if "password" in names else None
    ex = names.index("expect") if "expect" in names else None
    rows = []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= column or not row[column].strip():
            raise UsageError(f"--users-csv {path}:{line}: no user")
        password = None
        if pw is not None:
            if len(row) <= pw or row[pw] == "":
                raise UsageError(f"--users-csv {path}:{line}: empty password")
            password = Secret(row[pw].encode())
        expect = None
        if ex is not None and len(row) > ex and row[ex].strip():
            expect = row[ex].strip().lower()
            if expect not in EXPECTATIONS:
                raise UsageError(f"--users-csv {path}:{line}: expect {row[ex]!r}: choose {', '.join(EXPECTATIONS)}")
        rows.append(LoadUser(row[column].strip(), password, expect))
    if not rows:
        raise UsageError(f"--users-csv {path}: no users after the header")
    return Users(rows=tuple(rows), source=path, count=len(rows))


def has_passwords(users: Users) -> bool:
    return bool(users.rows) and all(u.password is not None for u in users.rows)
