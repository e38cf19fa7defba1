"""Probe files (YAML) -> validated, typed objects: modules, targets, checks.

Why a hand-written walker over ``yaml.compose`` nodes instead of
``yaml.safe_load``: every error must name FILE:LINE and the field path, and a
file with any error must run nothing, so the loader keeps each node's mark,
collects every problem it finds and raises them together at the end.

Secrets (shared secrets, passwords, OTP codes, key passphrases) only ever come
from files or environment variables and live in :class:`Secret` objects; no
error message or repr shows them.  ``${VAR}`` and ``${VAR:-default}`` are
expanded in addresses, identities, server names, NAS identifiers and file
paths, so one probe file can be pointed at another server (a lab, a test) from
the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .inputs import UsageError, ascii_float, ascii_int, parse_hostport, read_secret_file
from .methods import METHOD_NAMES, METHODS, TLS_VERSIONS, Given, MethodSpec, Problem, UnknownMethod, spec
from .model import RADSEC_PORT, RADSEC_SECRET, TRANSPORTS, RadsecOptions
from .model import (DEFAULT_INTERVAL_S, DEFAULT_WINDOW_S, Check, Expectation, Module, ProbeConfig, Secret, Target,
                    TlsOptions)
from .outcome import EXPECTATIONS
from .radius.dictionary import DictionaryError, RadiusDictionary, default_dictionary
from .radius.profiles import PROFILES, check_request_attribute
from .radius.transport import RetryPolicy
from .suggest import did_you_mean

MA_POLICIES = ("required", "optional")
# Re-exported: the validated objects live in probe.model (one set for every front door).
__all__ = ["Check", "ConfigIssue", "Expectation", "Module", "ProbeConfig", "ProbeFileError", "Secret", "Target",
           "TlsOptions", "load_probe_files", "TLS_VERSIONS", "METHODS"]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

MODULE_FIELDS = (
    "method", "identity", "outer_identity", "password_file", "password_env", "otp_file", "otp_env",
    "cert", "key", "key_password_file", "key_password_env", "pkcs12", "pkcs12_password_file",
    "pkcs12_password_env", "ca", "server_name", "insecure", "tls_max", "profile", "attrs", "timeout",
    "retries", "window", "late_wait", "deadline", "framed_mtu", "nas_identifier",
)
TARGET_FIELDS = ("address", "secret_file", "secret_env", "labels", "source", "transport", "radsec")
RADSEC_FIELDS = ("cert", "key", "key_password_file", "key_password_env", "ca", "server_name", "insecure")
CHECK_FIELDS = ("name", "target", "targets", "module", "expect", "interval")
EXPECT_FIELDS = ("result", "within", "reply_message", "attributes", "message_authenticator")
TOP_FIELDS = ("modules", "targets", "checks")


# ---------------------------------------------------------------------------
# The validated objects


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a probe file: where it is and what is wrong (never a secret value)."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        # FILE:LINE: PATH: MESSAGE; no line 0 for a file that could not be read, no empty path at the top level
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        path = "" if self.path in ("", "(file)") else f"{self.path}: "
        return f"{where}: {path}{self.message}"


class ProbeFileError(Exception):
    """Every problem found in the probe files; nothing may run."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = list(issues)


# ---------------------------------------------------------------------------
# Node reading with located errors


class _Reader:
    """Reads typed values out of composed nodes, recording a ConfigIssue for each problem."""

    def __init__(self, file: str, loader: yaml.SafeLoader, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.loader = loader
        self.issues = issues
        self._flat: dict[int, tuple[list[Any], list[Any]]] = {}

    def error(self, node: Node, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, node.start_mark.line + 1, path, message))

    def mapping(self, node: Node, path: str, allowed: Iterable[str] | None = None) -> dict[str, tuple[Node, Node]] | None:
        """Key -> (key node, value node); flags non-mappings, duplicate and (if ``allowed``) unknown keys."""
        if not isinstance(node, MappingNode):
            if not path:  # the document itself
                self.error(node, path, f"a probe file is a mapping of modules, targets and checks, not {_kind(node)}")
            else:
                self.error(node, path, f"expected a mapping, got {_kind(node)}")
            return None
        split = self._flatten(node, path)
        if split is None:
            return None
        merged, own = split
        out: dict[str, tuple[Node, Node]] = {}
        known = tuple(allowed) if allowed is not None else None
        for key_node, value_node in own:
            key = self._key(key_node, path, known)
            if key is None:
                continue
            if key in out:
                self.error(key_node, _join(path, key),
                           f"duplicate key (first at line {out[key][0].start_mark.line + 1})")
                continue
            out[key] = (key_node, value_node)
        inherited: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in merged:  # a later merge wins over an earlier one, own keys over both
            key = self._key(key_node, path, known)
            if key is not None and key not in out:
                inherited[key] = (key_node, value_node)
        return {**inherited, **out}

    def _flatten(self, node: MappingNode, path: str) -> tuple[list[Any], list[Any]] | None:
        """(pairs from YAML merge keys, the mapping's own pairs); once per node, as aliases share nodes."""
        if id(node) not in self._flat:
            own_count = sum(1 for k, _ in node.value if k.tag != _MERGE)
            try:
                self.loader.flatten_mapping(node)  # merged pairs first, then the node's own
            except yaml.YAMLError as exc:
                self.error(node, path, f"bad merge key: {getattr(exc, 'problem', exc)}")
                return None
            cut = len(node.value) - own_count
            self._flat[id(node)] = (node.value[:cut], node.value[cut:])
        return self._flat[id(node)]

    def _key(self, key_node: Node, path: str, known: Sequence[str] | None) -> str | None:
        if not isinstance(key_node, ScalarNode) or key_node.tag in (_NULL, _BOOL):
            self.error(key_node, path, "keys must be names")
            return None
        key = str(key_node.value)
        if known is not None and key not in known:
            self.error(key_node, _join(path, key), _unknown_key(key, known))
            return None
        return key

    def text(self, node: Node, path: str, *, expand: bool = False) -> str | None:
        """A scalar as written (numbers keep their spelling, e.g. tls_max: 1.2); not null or boolean."""
        if not isinstance(node, ScalarNode) or node.tag in (_NULL, _BOOL):
            self.error(node, path, f"expected a string, got {_kind(node)}")
            return None
        value = str(node.value)
        if expand:
            return self.expand(node, path, value)
        return value

    def expand(self, node: Node, path: str, value: str) -> str | None:
        missing: list[str] = []

        def substitute(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            current = os.environ.get(name)
            if current:
                return current
            if default is not None:
                return default
            missing.append(name)
            return ""

        result = _ENV.sub(substitute, value)
        for name in missing:
            self.error(node, path, f"environment variable {name} is not set (write ${{{name}:-DEFAULT}} for a default)")
        return None if missing else result

    def number(self, node: Node, path: str, *, minimum: float, inclusive: bool = False,
               integer: bool = False) -> float | None:
        """A number in ASCII digits, or ``${VAR:-number}`` (timings tuned from the environment, e.g. in CI).

        YAML's own number forms beyond plain decimals (``1_000``, ``+5``, ``0x10``, ``1:30``, ``.inf``,
        ``.nan``) and other scripts' digits are refused: one rule for every input number
        (:func:`probe.inputs.ascii_int` / :func:`probe.inputs.ascii_float`).
        """
        want = "a whole number" if integer else "a number"
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT) and (node.tag == _INT or not integer):
            text: str | None = node.value
            expanded = ""
        elif isinstance(node, ScalarNode) and node.tag == _STR and "${" in node.value:
            text = self.expand(node, path, node.value)
            if text is None:
                return None
            expanded = f" after expanding {node.value}"
        else:
            self.error(node, path, f"expected {want}, got {_kind(node)}")
            return None
        try:
            value: float = ascii_int(text, "value") if integer else ascii_float(text, "value")
        except UsageError:
            self.error(node, path, f"expected {want}, got {text!r}{expanded}")
            return None
        if value < minimum or (value == minimum and not inclusive):
            self.error(node, path, f"must be {'>=' if inclusive else '>'} {minimum:g}, not {value:g}")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.error(node, path, f"expected true or false, got {_kind(node)}")
            return None
        return bool(self.loader.construct_object(node))

    def choice(self, node: Node, path: str, choices: Sequence[str], what: str) -> str | None:
        value = self.text(node, path)
        if value is not None and value not in choices:
            self.error(node, path, f"unknown {what} {value!r} (choose {', '.join(choices)})")
            return None
        return value

    def scalars(self, node: Node, path: str, *, expand: bool = False) -> list[tuple[Node, str]]:
        """One scalar or a list of scalars (attribute values)."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        out = []
        for i, item in enumerate(items):
            where = f"{path}[{i}]" if isinstance(node, SequenceNode) else path
            value = self.text(item, where, expand=expand)
            if value is not None:
                out.append((item, value))
        return out

    def base_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.file).resolve().parent / path


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {_NULL: "nothing (null)", _BOOL: "true/false", _INT: "a number", _FLOAT: "a number"}.get(
        node.tag, "a string")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key(key: str, known: Sequence[str]) -> str:
    if key in ("password", "secret", "otp", "key_password", "pkcs12_password"):
        return f"unknown field (a literal secret is refused: use {key}_file or {key}_env)"
    return f"unknown field (known: {', '.join(known)}){did_you_mean(key, known)}"


# ---------------------------------------------------------------------------
# Sections


@dataclass
class _FileDoc:
    """One probe file's parsed sections before cross-file checks."""

    modules: dict[str, Module] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    # Defined but invalid: a check naming one is skipped quietly (its cause is already reported).
    broken: set[str] = field(default_factory=set)


def _secret_source(r: _Reader, fields: dict[str, tuple[Node, Node]], stem: str, path: str,
                   owner: Node | None, required: bool) -> Secret | None:
    """``<stem>_file`` or ``<stem>_env`` -> Secret; exactly one when required, at most one otherwise."""
    given = [k for k in (f"{stem}_file", f"{stem}_env") if k in fields]
    if len(given) > 1:
        r.error(fields[given[1]][0], _join(path, given[1]), f"give {stem}_file or {stem}_env, not both")
        return None
    if not given:
        if required and owner is not None:
            r.error(owner, path, f"missing {stem}_file or {stem}_env")
        return None
    key = given[0]
    node = fields[key][1]
    where = _join(path, key)
    if key.endswith("_env"):
        name = r.text(node, where)
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            r.error(node, where, f"environment variable {name} is not set or empty")
            return None
        return Secret(value.encode("utf-8"))
    text = r.text(node, where, expand=True)
    if text is None:
        return None
    try:
        return Secret(read_secret_file(str(r.base_path(text)), "file"))
    except UsageError as exc:
        r.error(node, where, str(exc))
        return None


def _file_path(r: _Reader, fields: dict[str, tuple[Node, Node]], key: str, path: str) -> str | None:
    """A readable file (certificate, key, CA), resolved against the probe file's folder."""
    if key not in fields:
        return None
    node = fields[key][1]
    where = _join(path, key)
    text = r.text(node, where, expand=True)
    if text is None:
        return None
    resolved = r.base_path(text)
    try:
        with resolved.open("rb"):
            pass
    except OSError as exc:
        r.error(node, where, f"file {resolved}: cannot read ({exc.strerror})")
        return None
    return str(resolved)


def _attrs(r: _Reader, node: Node, path: str, dictionary: RadiusDictionary,
           request: bool = False) -> list[tuple[str, str]] | None:
    """``{Name: value or [values]}`` checked against the dictionary; canonical names.

    ``request``: attributes the probe sends, which must also be ones a user may add."""
    fields = r.mapping(node, path)
    if fields is None:
        return None
    out: list[tuple[str, str]] = []
    for name, (key_node, value_node) in fields.items():
        where = _join(path, name)
        try:
            adef = dictionary.get(name)
        except DictionaryError as exc:
            r.error(key_node, where, str(exc))
            continue
        for item, value in r.scalars(value_node, where, expand=True):
            try:
                if request:
                    check_request_attribute(adef.name, value, dictionary)
                else:
                    dictionary.encode(adef.name, value)
            except DictionaryError as exc:
                r.error(item, where, str(exc))
                continue
            out.append((adef.name, value))
    return out


def _method(r: _Reader, node: Node, path: str) -> MethodSpec | None:
    name = r.text(node, path)
    if name is None:
        return None
    try:
        return spec(name)
    except UnknownMethod as exc:
        r.error(node, path, str(exc))
        return None


def _module(r: _Reader, name: str, node: Node, path: str, dictionary: RadiusDictionary) -> Module | None:
    fields = r.mapping(node, path, MODULE_FIELDS)
    if fields is None:
        return None
    before = len(r.issues)

    def value(key: str, read: Callable[[Node, str], Any]) -> Any:
        return read(fields[key][1], _join(path, key)) if key in fields else None

    method: MethodSpec | None = value("method", lambda n, p: _method(r, n, p))
    identity = value("identity", lambda n, p: r.text(n, p, expand=True))
    for required in ("method", "identity"):
        if required == "identity" and method is not None and method.credential == "none":
            continue  # status-server / accounting: no account (accounting's User-Name defaults to the NAS's)
        if required not in fields:
            r.error(node, path, f"missing {required}")
    m = Module(name=name, method=method.name if method else METHOD_NAMES[0],
               identity=identity or ("radius-probe" if method is not None and method.credential == "none" else ""))
    m.outer_identity = value("outer_identity", lambda n, p: r.text(n, p, expand=True))
    m.password = _secret_source(r, fields, "password", path, node, required=False)
    m.otp = _secret_source(r, fields, "otp", path, node, required=False)
    m.tls = _tls(r, fields, path, method)
    if method is not None:
        for problem in method.requirements(_given(fields, m.tls)):
            for where, message in _problem_issues(problem, method, fields):
                r.error(fields[where][0] if where else node, _join(path, where) if where else path, message)
    m.profile = value("profile", lambda n, p: r.choice(n, p, PROFILES, "NAS profile")) or "rras"
    m.attrs = value("attrs", lambda n, p: _attrs(r, n, p, dictionary, request=True)) or []
    timeout = value("timeout", lambda n, p: r.number(n, p, minimum=0))
    retries = value("retries", lambda n, p: r.number(n, p, minimum=0, inclusive=True, integer=True))
    window = value("window", lambda n, p: r.number(n, p, minimum=0))
    late_wait = value("late_wait", lambda n, p: r.number(n, p, minimum=0, inclusive=True))
    deadline = value("deadline", lambda n, p: r.number(n, p, minimum=0))
    m.window_s = float(window if window is not None else DEFAULT_WINDOW_S)
    m.policy = RetryPolicy(timeout_s=float(timeout if timeout is not None else 30.0),
                           retries=int(retries if retries is not None else 2),
                           listen_s=float(late_wait if late_wait is not None else 1.5 * m.window_s),
                           deadline_s=float(deadline) if deadline is not None else None)
    mtu = value("framed_mtu", lambda n, p: r.number(n, p, minimum=64, inclusive=True, integer=True))
    m.framed_mtu = int(mtu) if mtu is not None else 1500
    m.nas_identifier = value("nas_identifier", lambda n, p: r.text(n, p, expand=True)) or "radius-probe"
    return m if len(r.issues) == before else None


_TLS_KEYS = ("cert", "key", "key_password_file", "key_password_env", "pkcs12", "pkcs12_password_file",
             "pkcs12_password_env", "ca", "server_name", "insecure", "tls_max")


def _given(fields: dict[str, tuple[Node, Node]], tls: TlsOptions) -> Given:
    """What the module's fields give (by presence: a field that failed to read is reported already)."""
    return Given(password="password_file" in fields or "password_env" in fields,
                 otp="otp_file" in fields or "otp_env" in fields, cert="cert" in fields, key="key" in fields,
                 pkcs12="pkcs12" in fields, ca="ca" in fields, insecure=tls.insecure,
                 tls=any(k in fields for k in _TLS_KEYS))


def _problem_issues(problem: Problem, method: MethodSpec,
                    fields: dict[str, tuple[Node, Node]]) -> list[tuple[str | None, str]]:
    """(field the issue is reported at, None: the module itself; message) for one broken method requirement."""
    name = method.name
    present = list(fields)
    if problem.kind == "missing":
        return [(None, {
            "password": "missing password_file or password_env",
            "certificate": f"{name} needs cert and key, or pkcs12",
            "ca": f"{name} needs ca (the CA of the server certificate) or insecure: true",
        }[problem.what])]
    if problem.what == "password":
        return [(k, f"{name} uses no password") for k in ("password_file", "password_env") if k in present]
    if problem.what == "otp":
        return [(k, "an OTP answer is sent with pap only") for k in ("otp_file", "otp_env") if k in present]
    if problem.what == "tls":
        return [(k, f"{name} uses no TLS: certificate fields are for EAP methods") for k in _TLS_KEYS if k in present]
    if problem.what == "client_certificate":
        return [("pkcs12" if "pkcs12" in present else "cert", f"{name} sends no client certificate")]
    return [("pkcs12", "give pkcs12 or cert and key, not both")]


def _tls(r: _Reader, fields: dict[str, tuple[Node, Node]], path: str, method: MethodSpec | None) -> TlsOptions:
    """Certificate fields fill TlsOptions (a method without TLS reads none: its requirements refuse them)."""
    if method is not None and not method.eap:
        return TlsOptions()
    t = TlsOptions(
        cert=_file_path(r, fields, "cert", path), key=_file_path(r, fields, "key", path),
        key_password=_secret_source(r, fields, "key_password", path, None, required=False),
        pkcs12=_file_path(r, fields, "pkcs12", path),
        pkcs12_password=_secret_source(r, fields, "pkcs12_password", path, None, required=False),
        ca=_file_path(r, fields, "ca", path),
    )
    if "server_name" in fields:
        t.server_name = r.text(fields["server_name"][1], _join(path, "server_name"), expand=True)
    if "insecure" in fields:
        t.insecure = bool(r.boolean(fields["insecure"][1], _join(path, "insecure")))
    if "tls_max" in fields:
        t.tls_max = r.choice(fields["tls_max"][1], _join(path, "tls_max"), TLS_VERSIONS, "TLS version")
    return t


def _target(r: _Reader, name: str, node: Node, path: str) -> Target | None:
    fields = r.mapping(node, path, TARGET_FIELDS)
    if fields is None:
        return None
    before = len(r.issues)
    radsec = _radsec(r, fields, path, node)
    host, port, address = "", 0, ""
    if "address" not in fields:
        r.error(node, path, "missing address (HOST[:PORT])")
    else:
        text = r.text(fields["address"][1], _join(path, "address"), expand=True)
        if text is not None:
            try:
                host, port = parse_hostport(text, RADSEC_PORT if radsec is not None else 1812)
                address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            except UsageError as exc:
                r.error(fields["address"][1], _join(path, "address"), str(exc))
    secret = _secret_source(r, fields, "secret", path, node, required=radsec is None)
    if secret is None and radsec is not None and not any(k in fields for k in ("secret_file", "secret_env")):
        secret = Secret(RADSEC_SECRET)  # RFC 6614 2.3
    labels: dict[str, str] = {}
    if "labels" in fields:
        label_fields = r.mapping(fields["labels"][1], _join(path, "labels")) or {}
        for key, (_, value_node) in label_fields.items():
            value = r.text(value_node, _join(path, f"labels.{key}"))
            if value is not None:
                labels[key] = value
    source = None
    if "source" in fields:
        source = r.text(fields["source"][1], _join(path, "source"), expand=True)
        problem = source_problem(source or "", host)
        if problem is not None:
            r.error(fields["source"][1], _join(path, "source"), problem)
    if len(r.issues) != before or secret is None:
        return None
    return Target(name, address, host, port, secret, labels, source=source, radsec=radsec)


def _radsec(r: _Reader, fields: dict[str, tuple[Node, Node]], path: str, node: Node) -> RadsecOptions | None:
    """A target's ``transport: radsec`` and its ``radsec:`` certificates (None: UDP)."""
    transport = "udp"
    if "transport" in fields:
        transport = r.choice(fields["transport"][1], _join(path, "transport"), TRANSPORTS, "transport") or "udp"
    if transport != "radsec":
        if "radsec" in fields:
            r.error(fields["radsec"][0], _join(path, "radsec"), "radsec: is for transport: radsec")
        return None
    where = _join(path, "radsec")
    if "radsec" not in fields:
        r.error(node, path, "transport: radsec needs radsec: {cert, key, ca} (RFC 6614: mutual TLS)")
        return RadsecOptions()
    sub = r.mapping(fields["radsec"][1], where, RADSEC_FIELDS) or {}
    opts = RadsecOptions(cert=_file_path(r, sub, "cert", where), key=_file_path(r, sub, "key", where),
                         key_password=_secret_source(r, sub, "key_password", where, None, required=False),
                         ca=_file_path(r, sub, "ca", where))
    if "server_name" in sub:
        opts.server_name = r.text(sub["server_name"][1], _join(where, "server_name"), expand=True)
    if "insecure" in sub:
        opts.insecure = bool(r.boolean(sub["insecure"][1], _join(where, "insecure")))
    if (opts.cert is None) != (opts.key is None):
        r.error(fields["radsec"][1], where, "give both cert and key (the server knows its RadSec clients by certificate)")
    if opts.ca is None and not opts.insecure:
        r.error(fields["radsec"][1], where, "missing ca (the CA of the server's certificate) or insecure: true")
    return opts


def source_problem(source: str, host: str = "") -> str | None:
    """Why ``source`` cannot be the address requests leave from (an IP literal of the target's family), or None."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(source)
    except ValueError:
        return f"{source!r} is not an IP address (the local address to send from, e.g. 10.0.0.5)"
    try:
        target_version: int | None = ipaddress.ip_address(host).version
    except ValueError:
        target_version = None  # a host name: its family is known once resolved
    if target_version is not None and target_version != ip.version:
        return f"{source} is IPv{ip.version} but the target {host} is IPv{target_version}"
    return None


def _expectation(r: _Reader, node: Node | None, path: str, dictionary: RadiusDictionary) -> Expectation:
    exp = Expectation()
    if node is None:
        return exp
    fields = r.mapping(node, path, EXPECT_FIELDS)
    if fields is None:
        return exp
    if "result" in fields:
        result = r.choice(fields["result"][1], _join(path, "result"), EXPECTATIONS, "result")
        exp.result = next((e for e in EXPECTATIONS if e == result), "accept")
    if "within" in fields:
        exp.within_s = r.number(fields["within"][1], _join(path, "within"), minimum=0)
    if "reply_message" in fields:
        where = _join(path, "reply_message")
        pattern = r.text(fields["reply_message"][1], where)
        if pattern is not None:
            try:
                exp.reply_message = re.compile(pattern)
            except re.error as exc:
                r.error(fields["reply_message"][1], where, f"not a valid regular expression ({exc})")
    if "attributes" in fields:
        where = _join(path, "attributes")
        for name, value in _attrs(r, fields["attributes"][1], where, dictionary) or []:
            if dictionary.get(name).encrypt:
                r.error(fields["attributes"][1], _join(where, name), "a hidden (encrypted) attribute cannot be compared")
                continue
            exp.attributes.setdefault(name, []).append(value)
    if "message_authenticator" in fields:
        policy = r.choice(fields["message_authenticator"][1], _join(path, "message_authenticator"),
                          MA_POLICIES, "Message-Authenticator policy")
        exp.message_authenticator = "optional" if policy == "optional" else "required"
    if exp.result == "discard":
        for key in ("within", "reply_message", "attributes"):
            if key in fields:
                r.error(fields[key][0], _join(path, key), "a discard has no reply to check")
    return exp


def _checks(r: _Reader, node: Node, doc: _FileDoc, dictionary: RadiusDictionary) -> None:
    if not isinstance(node, SequenceNode):
        r.error(node, "checks", f"expected a list of checks, got {_kind(node)}")
        return
    if not node.value:
        r.error(node, "checks", "no checks")
    for i, item in enumerate(node.value):
        path = f"checks[{i}]"
        fields = r.mapping(item, path, CHECK_FIELDS)
        if fields is None:
            continue
        before = len(r.issues)
        name = r.text(fields["name"][1], _join(path, "name")) if "name" in fields else None
        if "name" not in fields:
            r.error(item, path, "missing name")
        module = _reference(r, fields, "module", doc.modules, doc.broken, path, item)
        targets = _check_targets(r, fields, doc, path, item)
        expect = _expectation(r, fields["expect"][1] if "expect" in fields else None, _join(path, "expect"), dictionary)
        interval = r.number(fields["interval"][1], _join(path, "interval"), minimum=0) if "interval" in fields else None
        if len(r.issues) != before or name is None or module is None:
            continue
        for target in targets:
            doc.checks.append(Check(name, target, module, expect, float(interval or DEFAULT_INTERVAL_S),
                                    r.file, item.start_mark.line + 1))


def _reference(r: _Reader, fields: dict[str, tuple[Node, Node]], key: str, defined: dict[str, Any],
               broken: set[str], path: str, owner: Node) -> Any:
    if key not in fields:
        r.error(owner, path, f"missing {key}")
        return None
    node = fields[key][1]
    name = r.text(node, _join(path, key))
    if name is None:
        return None
    return _lookup(r, node, _join(path, key), key, name, defined, broken)


def _lookup(r: _Reader, node: Node, path: str, kind: str, name: str, defined: dict[str, Any],
            broken: set[str]) -> Any:
    """The named module/target; None (reported once) when undefined or itself invalid."""
    if f"{kind}:{name}" in broken:
        return None  # the file has errors already, so nothing runs anyway
    if name not in defined:
        # a module/target with errors of its own is still defined: name it (its errors are listed too)
        invalid = [b.split(":", 1)[1] for b in broken if b.startswith(f"{kind}:")]
        names = [*defined, *sorted(n for n in invalid if n not in defined)]
        listed = ", ".join(n + (" (with errors)" if n in invalid else "") for n in names) or "none"
        r.error(node, path, f"undefined {kind} {name!r} (defined: {listed}){did_you_mean(name, names)}")
        return None
    return defined[name]


def _check_targets(r: _Reader, fields: dict[str, tuple[Node, Node]], doc: _FileDoc, path: str,
                   owner: Node) -> list[Target]:
    """``target: NAME``, ``targets: [NAMES]`` or ``targets: "*"`` (every target of the file)."""
    defined = doc.targets
    if "target" in fields and "targets" in fields:
        r.error(fields["targets"][0], _join(path, "targets"), "give target or targets, not both")
        return []
    if "target" in fields:
        target = _reference(r, fields, "target", defined, doc.broken, path, owner)
        return [target] if target is not None else []
    if "targets" not in fields:
        r.error(owner, path, "missing target (or targets)")
        return []
    node = fields["targets"][1]
    where = _join(path, "targets")
    if isinstance(node, ScalarNode) and node.value == "*" and node.tag == _STR:
        if not defined and not any(b.startswith("target:") for b in doc.broken):
            r.error(node, where, "'*' but no targets are defined")
        return list(defined.values())
    if not isinstance(node, SequenceNode) or not node.value:
        r.error(node, where, f"expected a list of target names or \"*\", got {_kind(node)}")
        return []
    out = []
    for i, item in enumerate(node.value):
        name = r.text(item, f"{where}[{i}]")
        if name is None:
            continue
        target = _lookup(r, item, f"{where}[{i}]", "target", name, defined, doc.broken)
        if target is not None:
            out.append(target)
    return out


# ---------------------------------------------------------------------------
# Entry points


def _load_file(path: str, issues: list[ConfigIssue], dictionary: RadiusDictionary) -> _FileDoc:
    doc = _FileDoc()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        issues.append(ConfigIssue(path, 0, "(file)", f"cannot read ({reason})"))
        return doc
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(ConfigIssue(path, mark.line + 1 if mark else 0, "(syntax)", f"not valid YAML: {problem}"))
        return doc
    try:
        _read_sections(_Reader(path, loader, issues), root, doc, dictionary)
    finally:
        loader.dispose()
    return doc


def _read_sections(r: _Reader, root: Node | None, doc: _FileDoc, dictionary: RadiusDictionary) -> None:
    if root is None:
        r.issues.append(ConfigIssue(r.file, 1, "(file)", "empty probe file"))
        return
    top = r.mapping(root, "")
    if top is None:
        return
    for key, (key_node, _) in top.items():
        if key not in TOP_FIELDS and not key.startswith("x-"):  # x-*: room for YAML anchors, ignored
            r.error(key_node, key, _unknown_key(key, TOP_FIELDS) + " (x-* keys are ignored)")
    for section in TOP_FIELDS:
        if section not in top:
            r.error(root, section, "missing section")
    if "modules" in top:
        for name, (_, node) in (r.mapping(top["modules"][1], "modules") or {}).items():
            module = _module(r, name, node, f"modules.{name}", dictionary)
            if module is None:
                doc.broken.add(f"module:{name}")
            else:
                doc.modules[name] = module
    if "targets" in top:
        for name, (_, node) in (r.mapping(top["targets"][1], "targets") or {}).items():
            target = _target(r, name, node, f"targets.{name}")
            if target is None:
                doc.broken.add(f"target:{name}")
            else:
                doc.targets[name] = target
    if "checks" in top:
        _checks(r, top["checks"][1], doc, dictionary)


def load_probe_files(paths: Sequence[str]) -> list[Check]:
    """Every check of every file, or ProbeFileError with every problem (then nothing may run)."""
    issues: list[ConfigIssue] = []
    dictionary = default_dictionary()
    checks: list[Check] = []
    for path in paths:
        checks += _load_file(path, issues, dictionary).checks
    seen: dict[tuple[str, str], Check] = {}
    for check in checks:
        key = (check.name, check.target.name)
        first = seen.setdefault(key, check)
        if first is not check:
            issues.append(ConfigIssue(check.source, check.line, "checks",
                                      f"check {check.name!r} on target {check.target.name!r} is also defined at "
                                      f"{first.source}:{first.line}"))
    if issues:
        raise ProbeFileError(list(dict.fromkeys(issues)))  # a merged (<<) field's problem shows once
    return checks
