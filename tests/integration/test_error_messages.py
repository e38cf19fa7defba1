"""The rough edges of error messages a newcomer meets (issue 13), each with its test: no "defined: none"
for a module that has errors of its own, no ``FILE:0:``, no ``list.yaml:1: :``, the whole NAS-Port-Type
list, ``--textfile`` without ``.prom``, the documented error_kind list, and "did you mean" for unknown
method, user, module, target, field, attribute and value names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probe.config import ProbeFileError, load_probe_files
from probe.drivers.aio import authenticate
from probe.outcome import ErrorKind
from tests.helpers import ROOT, cli, emulator, pap, run

PROBE = """\
modules:
  push:  {method: papp, identity: alice, password_file: pw}
  push2: {method: pap, identity: alice, password_file: pw, timout: 3, attrs: {NAS-Port-Typo: Virtual}}
  push3: {method: pap, identity: alice, password_file: pw, attrs: {NAS-Port-Type: Virtul}}
targets:
  nps1: {address: "127.0.0.1:1812", secret_file: pw}
checks:
  - {name: a, target: nps2, module: push}
  - {name: b, target: nps1, module: psh2}
  - {name: c, target: nps1, module: push3, expect: {reslt: accept}}
"""


def issues(tmp_path: Path, text: str, name: str = "probe.yaml") -> list[str]:
    (tmp_path / "pw").write_text("x\n")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ProbeFileError) as err:
        load_probe_files([str(path)])
    return [str(i).replace(str(tmp_path) + "/", "") for i in err.value.issues]


def test_probe_file_errors_suggest_the_known_name(tmp_path: Path) -> None:
    got = issues(tmp_path, PROBE)
    expect = {
        "probe.yaml:2: modules.push.method": "did you mean 'pap'?",
        "probe.yaml:3: modules.push2.timout": "did you mean 'timeout'?",
        "probe.yaml:3: modules.push2.attrs.NAS-Port-Typo": "did you mean 'NAS-Port-Type'?",
        "probe.yaml:4: modules.push3.attrs.NAS-Port-Type": "did you mean 'Virtual'?",
        "probe.yaml:8: checks[0].target": "did you mean 'nps1'?",
        "probe.yaml:9: checks[1].module": "did you mean 'push2'?",
        "probe.yaml:10: checks[2].expect.reslt": "did you mean 'result'?",
    }
    for where, hint in expect.items():
        line = next((g for g in got if g.startswith(where + ":")), None)
        assert line is not None and line.endswith(hint), (where, got)


def test_a_module_with_errors_is_still_named_as_defined(tmp_path: Path) -> None:
    """Every module has an error of its own: the undefined reference lists them, never 'defined: none'."""
    got = issues(tmp_path, PROBE)
    line = next(g for g in got if "checks[1].module" in g)
    assert "defined: none" not in line
    assert "(defined: push (with errors), push2 (with errors), push3 (with errors))" in line


def test_the_whole_value_list_is_shown(tmp_path: Path) -> None:
    """NAS-Port-Type has 20 named values; the list was cut after 12 (Virtual, the likely one, was cut)."""
    line = next(g for g in issues(tmp_path, PROBE) if "NAS-Port-Type: NAS-Port-Type=" in g)
    listed = re.search(r"known value \(([^)]*)\)", line)
    assert listed is not None
    values = listed.group(1).split(", ")
    assert len(values) >= 20 and {"Virtual", "Wireless-802.11", "xDSL"} <= set(values)


def test_a_missing_file_has_no_line_zero(tmp_path: Path) -> None:
    with pytest.raises(ProbeFileError) as err:
        load_probe_files([str(tmp_path / "nowhere.yaml")])
    text = str(err.value.issues[0])
    assert text == f"{tmp_path / 'nowhere.yaml'}: cannot read (No such file or directory)"
    assert ":0:" not in text


def test_a_list_at_the_top_has_no_empty_path(tmp_path: Path) -> None:
    got = issues(tmp_path, "- a\n- b\n", name="list.yaml")
    assert got == ["list.yaml:1: a probe file is a mapping of modules, targets and checks, not a list"]
    assert not any(": :" in g for g in got)


def test_textfile_must_end_in_prom(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    probe = tmp_path / "probe.yaml"
    probe.write_text("modules: {m: {method: pap, identity: a, password_file: pw}}\n"
                     "targets: {t: {address: '127.0.0.1:9', secret_file: pw}}\n"
                     "checks: [{name: c, target: t, module: m}]\n")
    r = cli("run", str(probe), "--textfile", str(tmp_path / "metrics.txt"), "--no-progress")
    assert r.returncode == 3 and r.stdout == ""  # refused before anything ran
    assert r.stderr.strip().endswith("reads only files ending in .prom (e.g. metrics.prom)"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "metrics.txt").exists()


def test_the_documented_error_kinds_are_the_real_ones() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("- `error_kind`:"))
    documented = {w for w in re.findall(r"`(\w+)`", line.split(":", 1)[1]) if not w.endswith("_s")}  # not deadline_s
    assert documented == {k.value for k in ErrorKind}, documented  # `local` was missing once


def test_unknown_method_on_the_command_line_suggests_one() -> None:
    r = cli("auth", "127.0.0.1", "--secret", "x", "--identity", "a", "--password", "x", "--method", "peap-mschap")
    assert r.returncode == 3 and r.stderr.strip().endswith("did you mean 'peap-mschapv2'?"), r.stderr
    r = cli("auth", "127.0.0.1", "--secret", "x", "--identity", "a", "--password", "x", "--attr", "Framed-MTO=1400")
    assert r.returncode == 3 and r.stderr.strip().endswith("did you mean 'Framed-MTU'?"), r.stderr


def test_the_emulator_suggests_a_known_user() -> None:
    """A lab login with a typo: the emulator's event (reason 16, as NPS) names the user it probably meant."""
    async def go() -> list[str]:
        async with emulator() as em:
            o = await authenticate(pap(em.address, "alcie"))
            assert o.result == "reject"
            bad = await authenticate(pap(em.address, "alice", password="wrong"))
            assert bad.result == "reject"
            return [e.text for e in em.events if e.reason == 16]
    texts = run(go())
    assert texts == ["access denied: authentication failed: unknown user 'alcie'; did you mean 'alice'?",
                     "access denied: authentication failed: bad password"], texts
