"""What ``quick`` and ``full`` run: workload sizes, repeats, the sweep and the memory sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    latency_urls: int  # workload L: URLs behind the latency server
    cpu_urls: int  # workload C: URLs from nginx, no latency
    runs: int  # runs per contestant and workload (the median is reported)
    sweep_urls: int  # URLs per point of the concurrency sweep (latency server)
    sweep: tuple[int, ...]  # concurrency levels of the sweep
    memory_sizes: tuple[int, ...]  # URLs in the frontier for the memory measurement
    # a peer whose first run took longer than this runs once (keeps `full` < 30 minutes)
    single_run_above: float = 30.0
    # eager seeding costs ~0.2 ms per URL and holds every request in memory (1M: minutes and
    # GiBs); JOBDIR costs as much again in pickling but keeps them on disk
    eager_max: int = 100_000
    disk_queue_max: int = 100_000
    latency: float = 0.2  # seconds per request on the latency server
    concurrency: int = 100

    def ideal(self, urls: int, concurrency: int | None = None) -> float:
        """The time limit N × latency / concurrency of a latency-bound crawl."""
        return urls * self.latency / (concurrency or self.concurrency)


SWEEP = (10, 25, 50, 100, 200, 400)
MODES = {
    "quick": Mode(
        "quick", latency_urls=1_000, cpu_urls=2_000, runs=1, sweep_urls=300, sweep=SWEEP,
        memory_sizes=(10_000, 100_000), eager_max=10_000, disk_queue_max=0,
    ),
    "full": Mode(
        "full", latency_urls=5_000, cpu_urls=20_000, runs=3, sweep_urls=2_000, sweep=SWEEP,
        memory_sizes=(10_000, 100_000, 1_000_000), disk_queue_max=1_000_000,
    ),
}  # fmt: skip
