"""Load generation: ``radius-probe load`` (asyncio, one machine) and a Locust user (gevent, many machines).

- :mod:`probe.load.run`: the engine (open-loop rate or closed-loop concurrency, bounded, paced);
- :mod:`probe.load.stats`: HDR histograms of the time to the final answer, counts, a time series;
- :mod:`probe.load.kernel`: /proc/net/snmp RcvbufErrors, socket buffer sizes and their caps;
- :mod:`probe.load.users`: users from a ``{n}`` template or a CSV file;
- :mod:`probe.load.report`: console, live line, JSON, self-contained HTML (inline SVG);
- :mod:`probe.load.cli`: the ``load`` command line;
- :mod:`probe.load.locust`: ``RadiusUser`` for Locust, on the blocking driver.

Needs the ``load`` extra (``pip install 'radius-probe[load]'``: hdrhistogram, locust, gevent).
"""
