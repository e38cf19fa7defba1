"""A Locust load test of a RADIUS server (NPS + the Entra MFA extension) with radius-probe's RadiusUser.

    pip install 'radius-probe[load]'
    radius-probe emulator --listen 127.0.0.1:1812 &        # or your lab NPS (test accounts only)
    locust -f contrib/locust/locustfile.py --headless -u 300 -r 50 -t 60s -H 127.0.0.1:1812 \
        --radius-secret-file lab.secret --radius-identity alice --radius-password-file pw

Distributed: one `--master --expect-workers N`, and N `--worker --master-host HOST` processes
(on as many machines) with the same locustfile. Each user is a greenlet: thousands per worker can
wait out a 60 s MFA push. Every authentication is one Locust request: type = method, name = check,
response time = time to the final answer, failure = the answer was not the expected one.
"""

from locust import between

from probe.load.locust import RadiusUser


class VpnUser(RadiusUser):
    """A VPN client's authentication, then a pause before the next (a user reconnecting)."""

    wait_time = between(0.5, 1.5)
