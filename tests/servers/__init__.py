"""Real RADIUS servers that integration tests start on 127.0.0.1 to prove the probe against."""
