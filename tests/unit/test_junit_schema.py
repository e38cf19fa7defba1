"""``run --junit`` validates against Jenkins' JUnit schema (issue 13), checked by an XSD validator
(xmlschema), not by string matching: the schema (tests/fixtures/jenkins-junit.xsd) has no ``skipped``
on <testsuites>, which the report used to write."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from probe.checks import CheckResult
from probe.diagnosis import CATALOGUE
from probe.model import Check, Expectation, Module, Secret, Target
from probe.outcome import Outcome
from probe.report import junit_xml

xmlschema = pytest.importorskip("xmlschema", reason="pip install xmlschema (in the test extras)")
SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "jenkins-junit.xsd"


def _result(name: str, source: str, **outcome: object) -> CheckResult:
    target = Target(name="nps1", address="127.0.0.1:1812", host="127.0.0.1", port=1812, secret=Secret(b"s"))
    check = Check(name=name, target=target, module=Module(name="m", method="pap", identity="alice"),
                  expect=Expectation(), source=source)
    o = Outcome(target="127.0.0.1:1812", method="pap", identity="alice", duration_s=0.01, **outcome)  # type: ignore[arg-type]
    failures = [] if o.expectation_met else ["expected accept, got discard"]
    return CheckResult(check, o, failures=failures, degraded=list(o.degraded))


def results() -> list[CheckResult]:
    return [
        _result("ok", "a.yaml", result="accept", expectation_met=True),
        _result("slow", "a.yaml", result="accept", expectation_met=True, degraded=["slow: 50 s of a 60 s window"]),
        _result("discard", "a.yaml", result="discard", diagnosis=[CATALOGUE["no_reply"].render()]),
        _result("cert", "b.yaml", result="error", error_kind="local", error_detail="cannot load the key <&>"),
    ]


def test_the_junit_report_is_valid_for_jenkins() -> None:
    schema = xmlschema.XMLSchema(str(SCHEMA))
    text = junit_xml(results())
    schema.validate(text)  # raises with the element and the rule that fails
    root = ET.fromstring(text.split("\n", 1)[1])
    assert [s.get("name") for s in root.findall("testsuite")] == ["a.yaml", "b.yaml"]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    assert root.findall("testsuite/testcase/error") and root.findall("testsuite/testcase/failure")


def test_the_schema_rejects_skipped_on_testsuites() -> None:
    """The validator is real: the old report's attribute fails it."""
    schema = xmlschema.XMLSchema(str(SCHEMA))
    text = junit_xml(results()).replace('<testsuites name="radius-probe"', '<testsuites skipped="0" name="radius-probe"')
    assert not schema.is_valid(text)
