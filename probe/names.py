"""The constants the command line's help names, in a module that imports nothing (issue 14).

``radius-probe --help`` builds every sub-command's parser, and their help texts name the
methods, the NAS profiles, the expectations, the defaults. Importing those from their
owners (probe.methods, probe.model, probe.outcome, probe.radius.profiles, probe.verdict,
probe.method_acct) loaded the RADIUS packet code, the dictionary parser and the verdict
only to print a usage text. The owners keep their definitions (some are typed, e.g. a tuple of
Literals); tests/unit/test_names.py holds every value here equal to its owner's, so a method
added to the registry (``tuple(probe.methods.METHODS)``) is added here too, or that test fails
naming it.
"""

from __future__ import annotations

METHOD_NAMES: tuple[str, ...] = (
    "pap", "eap-tls", "peap-mschapv2", "peap-tls", "mschapv2", "chap", "eap-mschapv2", "ttls-pap", "ttls-mschapv2",
    "status-server", "accounting",
)
"""The registry's method names, in its order (probe.methods.METHODS)."""
DEFAULT_METHOD = "pap"
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
PROFILES = ("rras", "generic")
EXPECTATIONS = ("accept", "reject", "challenge", "discard")
EXIT_UNKNOWN = 3
DEFAULT_WINDOW_S = 60.0
DEFAULT_SLOW_FRACTION = 0.75
DEFAULT_CERT_WARN_DAYS = 30
TRANSPORTS = ("udp", "radsec")
STATUS_TYPES = {"start": "Start", "interim-update": "Interim-Update", "interim": "Interim-Update", "stop": "Stop",
                "accounting-on": "Accounting-On", "accounting-off": "Accounting-Off"}
"""``acct --status-type`` names (lower case) and the dictionary's values."""
