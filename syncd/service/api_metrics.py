"""/metrics families for what every gateway counted (see `syncd.telemetry`)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd import telemetry


class ApiCollector(Collector):
    """Read at scrape time, so the counts need no copying between threads."""

    def collect(self) -> Iterator[Metric]:
        requests, remaining = telemetry.snapshot()
        counts = CounterMetricFamily(
            "syncd_api_requests",
            "API requests to a source, by HTTP status ('none': no answer).",
            labels=["source", "status"],
        )
        for (source, status), n in sorted(requests.items()):
            counts.add_metric([source, status], n)
        yield counts
        headroom = GaugeMetricFamily(
            "syncd_rate_limit_remaining",
            "Requests left in the source's rate-limit window, as its last answer said.",
            labels=["source"],
        )
        for source, left in sorted(remaining.items()):
            headroom.add_metric([source], left)
        yield headroom
