"""Prometheus metrics: requests, latency split by stage, tokens. One registry per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ragtune_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.stage = Histogram(
            "ragtune_stage_seconds",
            "Time per answer stage",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "ragtune_tokens", "Tokens processed", ["kind"], registry=self.registry
        )

    def observe_answer(
        self,
        timings: dict[str, float],
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
    ) -> None:
        for stage in ("retrieval", "prompt", "generation", "first_token", "verify"):
            if stage in timings:
                self.stage.labels(stage).observe(timings[stage])
        self.tokens.labels("prompt").inc(prompt_tokens)
        self.tokens.labels("completion").inc(completion_tokens)
        # Prompt tokens reused from the KV cache (a prefix shared with an earlier request).
        self.tokens.labels("prompt_cached").inc(cached_tokens)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
