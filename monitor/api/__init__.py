"""The HTTP API process: ingestion routes, health probes and ``/metrics`` (FastAPI)."""
