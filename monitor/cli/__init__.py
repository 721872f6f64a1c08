"""Entry points: the ``driftscope`` command line and the processes it starts (worker, api, dashboard, up, demo).

The only layer that wires collectors, detectors, alerts and the dashboard together."""
