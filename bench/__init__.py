"""Benchmarks and the load generator: each script measures xlt side by side with its own yardstick in one run."""
