"""radius-probe: a RADIUS synthetic probe that stands in for a Windows RRAS / Always On VPN server."""

__version__ = "0.1.0"
