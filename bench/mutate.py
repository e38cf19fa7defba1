"""A small AST mutation runner: how many mutants of a module do the given tests kill?

    python3 bench/mutate.py probe/verdict.py tests/unit/test_verdict.py [--only FUNC,...] [--jobs 1]

Operators: comparison flips (== !=, < >=, <= >, in / not in, is / is not), and <-> or, removing a
``not``, negating an ``if``/``elif``/ternary condition, number constants +1 (0 -> 1), True <-> False,
non-empty string constants -> "XX" (docstrings, ``__all__`` and annotations are left alone), and
``return X`` -> ``return None``.  Each mutant is written over a copy of the module in a scratch copy of
the repository and the tests run there (pytest -x); a mutant is killed when they fail (or time out).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.LtE: ast.Gt, ast.Gt: ast.LtE,
        ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes not to mutate: docstrings, __all__, annotations."""
    skip: set[int] = set()

    def all_of(node: ast.AST) -> None:
        skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            all_of(body[0])
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            all_of(node)
        if isinstance(node, ast.AnnAssign):
            all_of(node.annotation)
        if isinstance(node, ast.arg) and node.annotation is not None:
            all_of(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            all_of(node.returns)
    return skip


def mutations(tree: ast.Module) -> list[tuple[str, int, str]]:
    """(operator, node index in ast.walk order, description) for every mutation point."""
    skip = _skipped(tree)
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in FLIP:
                    out.append(("compare", i, f"{line}: {type(op).__name__} -> {FLIP[type(op)].__name__} (#{k})"))
        elif isinstance(node, ast.BoolOp):
            out.append(("boolop", i, f"{line}: {type(node.op).__name__} swapped"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append(("not", i, f"{line}: not removed"))
        elif isinstance(node, (ast.If, ast.IfExp)):
            out.append(("negate", i, f"{line}: condition negated"))
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                out.append(("const", i, f"{line}: {v} -> {not v}"))
            elif isinstance(v, (int, float)):
                out.append(("const", i, f"{line}: {v} -> {v + 1}"))
            elif isinstance(v, str) and v:
                out.append(("const", i, f"{line}: {v[:30]!r} -> 'XX'"))
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            out.append(("return", i, f"{line}: return None"))
    return out


def apply(tree: ast.Module, op: str, index: int, desc: str) -> str:
    t = copy.deepcopy(tree)
    node = list(ast.walk(t))[index]
    if op == "compare":
        assert isinstance(node, ast.Compare)
        k = int(desc.rsplit("#", 1)[1].rstrip(")"))
        node.ops[k] = FLIP[type(node.ops[k])]()
    elif op == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif op == "not":
        assert isinstance(node, ast.UnaryOp)
        _replace(t, node, node.operand)
    elif op == "negate":
        assert isinstance(node, (ast.If, ast.IfExp))
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif op == "const":
        assert isinstance(node, ast.Constant)
        v = node.value
        node.value = (not v) if isinstance(v, bool) else (v + 1) if isinstance(v, (int, float)) else "XX"
    elif op == "return":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(value=None)
    return ast.unparse(ast.fix_missing_locations(t))


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for j, item in enumerate(value):
                    if item is old:
                        value[j] = new
                        return
    raise AssertionError("node not found")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("tests", nargs="+")
    ap.add_argument("--only", help="comma-separated function names to mutate (default: the whole module)")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    root = Path.cwd()
    source = (root / args.module).read_text()
    tree = ast.parse(source)
    owners = {}
    if args.only:
        wanted = set(args.only.split(","))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in wanted:
                owners.update({id(n): node.name for n in ast.walk(node)})
    points = mutations(tree)
    if args.only:
        nodes = list(ast.walk(tree))
        points = [p for p in points if id(nodes[p[1]]) in owners]
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        scratch = Path(tmp) / "repo"
        shutil.copytree(root / "probe", scratch / "probe", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(root / "tests", scratch / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        for extra in ("dictionaries", "pyproject.toml"):  # data the package reads; pytest settings
            if (root / extra).is_dir():
                shutil.copytree(root / extra, scratch / extra)
            elif (root / extra).is_file():
                shutil.copy(root / extra, scratch / extra)
        target = scratch / args.module
        env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args.tests]
        baseline = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, timeout=args.timeout * 5)
        if baseline.returncode != 0:
            print(baseline.stdout.decode()[-2000:])
            print("the tests fail on the unmutated module")
            return 2
        survived = []
        killed = 0
        for n, (op, index, desc) in enumerate(points, 1):
            target.write_text(apply(tree, op, index, desc))
            try:
                r = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, timeout=args.timeout)
                dead = r.returncode != 0
            except subprocess.TimeoutExpired:
                dead = True
            killed += dead
            if not dead:
                survived.append(f"{op:8s} {desc}")
            print(f"[{n}/{len(points)}] {'killed  ' if dead else 'SURVIVED'} {op:8s} {desc}", flush=True)
        target.write_text(source)
    total = len(points)
    print(f"\n{args.module}: {killed}/{total} mutants killed ({100.0 * killed / max(1, total):.1f}%)")
    for s in survived:
        print("  survived:", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
