"""``GET /metrics``: the server's numbers in Prometheus' text format (prometheus-client).

    pipe_requests_total{surface,command,status}          requests answered (HTTP and Socket Mode)
    pipe_request_duration_seconds{surface,command}       how long they took (histogram)
    pipe_outbox_backlog_events{consumer}                 audit events a consumer has still to deliver
    pipe_outbox_oldest_undelivered_age_seconds{consumer} age of the oldest of them (0 when none)
    pipe_outbox_delivery_failures_total{consumer}        deliveries that failed (retried later, or given up)
    pipe_database_errors_total                           calls that found the database unavailable
    pipe_notifier_up / pipe_socket_mode_connected        1 or 0

Each app has its own registry (tests build many apps in one process); the outbox numbers are read
from the database at scrape time, so every replica reports the same backlog.
"""

from __future__ import annotations

import logging

from chainpipe.core.clock import utcnow
from chainpipe.core.config import Settings
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("chainpipe.metrics")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, settings: Settings, *, outage=None, notifier=None, socket_mode=None):
        self.settings, self.outage, self.notifier, self.socket_mode = settings, outage, notifier, socket_mode
        self.registry = CollectorRegistry()
        self.requests = Counter("pipe_requests", "Requests answered, by surface, command and status",
                                ["surface", "command", "status"], registry=self.registry)
        self.latency = Histogram("pipe_request_duration_seconds", "Time to answer a request",
                                 ["surface", "command"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(_StateCollector(self))

    def observe(self, surface: str, command: str, status: int, seconds: float) -> None:
        self.requests.labels(surface, command, str(status)).inc()
        self.latency.labels(surface, command).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """The numbers that are read, not counted here: outbox backlog, failures, database errors."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        m = self.metrics
        errors = CounterMetricFamily("pipe_database_errors", "Calls that found the database unavailable")
        failures = CounterMetricFamily("pipe_outbox_delivery_failures", "Outbox deliveries that failed",
                                       labels=["consumer"])
        if m.notifier is not None:
            from chainpipe.bot.notifier import CONSUMER

            failures.add_metric([CONSUMER], m.notifier.delivery_failures)
            yield GaugeMetricFamily("pipe_notifier_up", "1 while the notifier's thread runs",
                                    value=1 if m.notifier.alive() else 0)
        yield failures
        if m.socket_mode is not None:
            yield GaugeMetricFamily("pipe_socket_mode_connected", "1 while connected to Slack over Socket Mode",
                                    value=1 if m.socket_mode.connected() else 0)
        yield from self._backlog()
        errors.add_metric([], m.outage.failures if m.outage is not None else 0)
        yield errors

    def _backlog(self):
        from chainpipe.core.services.outbox_backlog import backlog, consumers
        from chainpipe.core.uow import UnitOfWork

        events = GaugeMetricFamily("pipe_outbox_backlog_events", "Audit events a consumer has still to deliver",
                                   labels=["consumer"])
        age = GaugeMetricFamily("pipe_outbox_oldest_undelivered_age_seconds",
                                "Age of the oldest audit event a consumer has still to deliver", labels=["consumer"])

        def read():
            with UnitOfWork(self.metrics.settings, write=False) as uow:
                names = set(consumers(uow)) | ({"slack"} if self.metrics.notifier is not None else set())
                return {name: backlog(uow, name) for name in sorted(names)}, uow.now()

        try:
            call = self.metrics.outage.call if self.metrics.outage is not None else (lambda fn: fn())
            found, now = call(read)
        except Exception as exc:  # noqa: BLE001 - a scrape during an outage still serves the counters
            log.debug("outbox backlog not read: %s", exc.__class__.__name__)
            return
        for name, (count, oldest) in found.items():
            events.add_metric([name], count)
            age.add_metric([name], max(0.0, ((now or utcnow()) - oldest).total_seconds()) if oldest else 0.0)
        yield events
        yield age


def slack_label(body) -> str:
    """The command label of a Slack request, from a closed set (the text after ``/pipe`` is anyone's)."""
    from chainpipe.bot import blocks
    from chainpipe.bot.slack_errors import describe
    from chainpipe.core.grammar import COMMANDS

    _, what = describe(body)
    kind, _, name = (what or "-").partition(" ")
    known = {"/pipe": set(COMMANDS) | {"help", ""}, "button": {blocks.APPROVE, blocks.REJECT},
             "view": {blocks.REJECT_MODAL}}
    if kind not in known:
        return "-"
    return f"{kind} {name}".strip() if name in known[kind] else f"{kind} ?"
