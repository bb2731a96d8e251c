"""Prometheus metrics. One registry per process (never the global one), so tests and apps stay apart.

Counters and histograms count what this process did; gauges that describe shared state (queue depth,
ledger size) are read from the database at scrape time, so every replica reports the same truth.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions_recorded = Counter(
            "rationale_decisions_recorded_total", "Decisions appended to the ledger", registry=self.registry
        )
        self.explanations = Counter(
            "rationale_explanations_total",
            "Explanations recorded, by method and outcome (succeeded, failed)",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.job_latency = Histogram(
            "rationale_job_latency_seconds",
            "From job creation to its result in the ledger",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "rationale_batch_seconds",
            "Time to explain and record one micro-batch",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "rationale_batch_size",
            "Jobs per micro-batch",
            ["method"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.queue_depth = Gauge("rationale_queue_depth", "Explanation jobs queued or running", registry=self.registry)
        self.jobs_by_state = Gauge("rationale_jobs", "Explanation jobs by state", ["state"], registry=self.registry)
        self.ledger_size = Gauge("rationale_ledger_entries", "Entries in the ledger", registry=self.registry)
        self.configured_batch_size = Gauge(
            "rationale_config_batch_size", "Configured micro-batch size", registry=self.registry
        )
        self.configured_batch_window = Gauge(
            "rationale_config_batch_window_seconds", "Configured micro-batch window", registry=self.registry
        )
        self.configured_explain_processes = Gauge(
            "rationale_config_explain_processes",
            "Child processes computing the embedded pool's explanations (0: in its threads)",
            registry=self.registry,
        )

        self.row_mismatches = Counter(
            "rationale_row_mismatches_total",
            "Rows read for serving that differ from the ledger entry they point at, by table",
            ["table"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
