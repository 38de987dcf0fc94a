"""Property-based runs of the CLI (in process) and the JSON API over every grammar command.

Two budgets: the default profile is bounded and derandomized (a fixed seed: the same cases every
run, part of `make test` and CI); `make fuzz` selects the `deep` profile (10,000 cases per surface,
random). Invariants: never exit 3 or HTTP 500; an error is one line; a refused command changes no
row.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

COMMON = dict(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large], deadline=None, database=None)
settings.register_profile("ci", max_examples=int(os.environ.get("PIPE_FUZZ_EXAMPLES", "250")),
                          derandomize=True, **COMMON)
settings.register_profile("deep", max_examples=int(os.environ.get("PIPE_FUZZ_EXAMPLES", "10000")),
                          derandomize=False, **COMMON)
settings.load_profile(os.environ.get("PIPE_FUZZ_PROFILE", "ci"))

from tests.adapters.conftest import pipe, pipe_with  # noqa: E402,F401  (the in-process CLI fixtures)
