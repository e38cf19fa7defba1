"""Naming an error class without importing its module (start-up cost of a one-shot check).

A PAP check must not load the TLS stack (pyOpenSSL and cryptography's X.509 cost tens of
milliseconds before the first datagram) only to name ``TlsConfigError`` in an ``except``
clause. An ``except`` clause evaluates its classes only when something is being raised,
and an error of a module nobody imported cannot be the one raised: so
``except (loaded_error("probe.eap.tls_engine", "TlsConfigError"), ValueError)`` catches
exactly what ``except (TlsConfigError, ValueError)`` caught, without the import.
"""

from __future__ import annotations

import sys

TLS_ERRORS = "probe.eap.tls_engine"
"""Where TlsConfigError lives (probe.eap.tls re-exports it)."""


class NeverRaised(Exception):
    """Stands in an ``except`` clause for an error class whose module was never imported."""


def loaded_error(module: str, name: str) -> type[Exception]:
    """The exception class ``module.name`` if ``module`` is loaded, else :class:`NeverRaised`."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) and issubclass(found, Exception) else NeverRaised


def tls_config_error() -> type[Exception]:
    """``TlsConfigError`` once the TLS stack is loaded, else :class:`NeverRaised`."""
    return loaded_error(TLS_ERRORS, "TlsConfigError")
