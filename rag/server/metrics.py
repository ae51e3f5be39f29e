"""Prometheus metrics of one app (its own registry, so two apps in a process do not mix).

Labels are endpoint templates (``/v1/jobs/{job_id}``, never the id), methods, statuses,
collection and generator names: bounded sets, and never a key.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("rag_http_requests", "HTTP requests by endpoint, method and status.",
                                ["endpoint", "method", "status"], registry=registry)
        self.latency = Histogram("rag_http_request_duration_seconds", "Time to the end of the response, by endpoint.",
                                 ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=registry)
        self.generation_tokens = Counter("rag_generation_tokens", "Tokens generated in answers.",
                                         ["collection", "generator"], registry=registry)
        self.answers = Counter("rag_answers", "Answers by outcome (answered or refused: not in the documents).",
                               ["collection", "outcome"], registry=registry)
        self.generation_running = Gauge("rag_generation_running", "Answers being generated now.", registry=registry)
        self.generation_waiting = Gauge("rag_generation_waiting", "Questions waiting for an answer slot.",
                                        registry=registry)
        self.overloaded = Counter("rag_generation_rejected", "Questions refused with 503 (answer queue full).",
                                  registry=registry)
        self.rate_limited = Counter("rag_rate_limited", "Requests refused with 429 (rate limit).", registry=registry)
        self.ingest_jobs = Counter("rag_ingest_jobs", "Finished ingest jobs by collection and status.",
                                   ["collection", "status"], registry=registry)
        self.ingest_running = Gauge("rag_ingest_jobs_active", "Ingest jobs queued or running.", registry=registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["Metrics"]
