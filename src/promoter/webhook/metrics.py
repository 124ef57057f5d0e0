"""Prometheus metrics of the webhook, with the official client library, on a registry of their own (one
per server, so that tests can run several servers in one process), served on a separate plain-HTTP
port: the metrics carry no secret, and a scrape must not need the webhook's serving certificate.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units, a ``promoter_admission_``
prefix).
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from promoter.app.admission import Decision, ImageState

#: Review latency buckets in seconds: cached answers take about a millisecond, uncached ones a few
#: round trips, on-demand copies up to the deadline.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class WebhookMetrics:
    """The webhook's counters, histogram and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reviews = Counter(
            "promoter_admission_reviews",
            "AdmissionReviews answered, by verdict (allowed, denied, invalid: a 400).",
            ["verdict"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "promoter_admission_review_seconds",
            "Time from a review's body read to its answer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter(
            "promoter_admission_images",
            "Images checked, by what was found (present, missing, promoted, foreign-environment...).",
            ["state"],
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "promoter_admission_cache_hits",
            "Images of the environment's registry answered from the positive cache.",
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "promoter_admission_cache_misses",
            "Images of the environment's registry asked of the registry.",
            registry=self.registry,
        )
        self.promotions = Counter(
            "promoter_admission_promotions",
            "Images copied on demand (promote mode), counted when each copy ends.",
            registry=self.registry,
        )
        self.registry_errors = Counter(
            "promoter_admission_registry_errors",
            "Images that could not be checked because the registry did not answer in time.",
            registry=self.registry,
        )
        self.promotions_running = Gauge(
            "promoter_admission_promotions_running",
            "On-demand copies running now.",
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            "promoter_admission_tls_reloads",
            "Times a rotated serving certificate was loaded.",
            registry=self.registry,
        )
        self.connections = Gauge(
            "promoter_admission_connections",
            "Open HTTPS connections (after their TLS handshake).",
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "promoter_admission_connections_refused",
            "Connections closed at once because --max-connections were open.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "promoter_admission_ready",
            "1 once promoter.yaml is loaded and the environment's registry answered.",
            registry=self.registry,
        )

    def record(self, decision: Decision, seconds: float) -> None:
        """Count one answered review."""
        self.reviews.labels("allowed" if decision.verdict.allowed else "denied").inc()
        self.latency.observe(seconds)
        for check in decision.checks:
            self.images.labels(check.state.value).inc()
        own = sum(1 for c in decision.checks if c.state in _LOOKED_UP)
        hits = decision.cache_hits
        if hits:
            self.cache_hits.inc(hits)
        if own - hits > 0:
            self.cache_misses.inc(own - hits)
        if decision.registry_errors:
            self.registry_errors.inc(decision.registry_errors)

    def invalid(self) -> None:
        """Count a request answered with HTTP 400."""
        self.reviews.labels("invalid").inc()

    def serve(self, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
        """Serve ``/metrics`` on ``host:port`` (0 picks a free port) in a daemon thread."""
        return start_http_server(port, addr=host, registry=self.registry)


#: States whose image was looked for in the environment's registry (cached or asked).
_LOOKED_UP = frozenset(
    {
        ImageState.PRESENT,
        ImageState.MISSING,
        ImageState.PROMOTED,
        ImageState.PROMOTING,
        ImageState.WOULD_PROMOTE,
        ImageState.UNCHECKED,
    }
)
