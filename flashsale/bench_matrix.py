"""`flashsale bench --configs on-1,off-1,on-2,off-2 --rounds N`: several configurations in
one command, each on freshly started servers, rounds interleaved (round 1 runs every
configuration, then round 2...), and one table of the medians at the end, with the ratios
the goals are stated in, taken within a round: reserve with limits on over reserve with
limits off (same process count), and reserve over the trivial query (same server)."""

import math
import os
import statistics
import sys
from collections.abc import Callable

from core.settings import Settings
from flashsale.bench import Config, Load, Phase, Result, run_config

PHASES = ("trivial query", "reserve", "stock read", "checkout")
METRICS: tuple[tuple[str, Callable[[Phase], float], str], ...] = (
    ("req/s", lambda p: p.throughput, "{:,.0f}"),
    ("p50 ms", lambda p: p.percentile(50), "{:,.1f}"),
    ("p95 ms", lambda p: p.percentile(95), "{:,.1f}"),
    ("p99 ms", lambda p: p.percentile(99), "{:,.1f}"),
    ("generator CPU s", lambda p: p.generator_cpu, "{:.2f}"),
    ("server CPU s", lambda p: p.server_cpu, "{:.2f}"),
    # What a request costs the API, which depends less than req/s on what else runs.
    ("server CPU ms/req", lambda p: _ratio(p.server_cpu * 1000, p.requests), "{:.2f}"),
    ("stores CPU s", lambda p: p.stores_cpu, "{:.2f}"),
)


def parse_configs(text: str) -> list[Config]:
    """`on-1,off-2` -> configurations; raises ValueError naming the bad part."""
    configs = []
    for part in (p.strip() for p in text.split(",")):
        limits, _, workers = part.partition("-")
        if limits not in ("on", "off") or not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"--configs: {part!r} is not on-N or off-N (N API processes >= 1)")
        config = Config(rate_limits=limits == "on", workers=int(workers))
        if config in configs:
            raise ValueError(f"--configs: {part!r} is given twice")
        configs.append(config)
    return configs


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else float("nan")


def _median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def _cell(value: float, pattern: str) -> str:
    return "-" if math.isnan(value) else pattern.format(value)


def table(configs: list[Config], rounds: list[dict[Config, Result]]) -> list[str]:
    """A Markdown table, one column per configuration, of the medians over the rounds."""
    rows: list[list[str]] = []
    for phase in PHASES:
        for metric, read, pattern in METRICS:
            cells = [
                _cell(_median([read(r[c].phases[phase]) for r in rounds]), pattern) for c in configs
            ]
            rows.append([phase, metric, *cells])

    def per_round(ratio: Callable[[dict[Config, Result], Config], float]) -> list[str]:
        return [_cell(_median([ratio(r, c) for r in rounds]), "{:.2f}") for c in configs]

    def reserve(r: dict[Config, Result], c: Config) -> float:
        return r[c].phases["reserve"].throughput

    def on_off(r: dict[Config, Result], c: Config) -> float:
        off = Config(rate_limits=False, workers=c.workers)
        return _ratio(reserve(r, c), reserve(r, off)) if c.rate_limits and off in r else math.nan

    def over_trivial(r: dict[Config, Result], c: Config) -> float:
        return _ratio(reserve(r, c), r[c].phases["trivial query"].throughput)

    rows.append(["ratio", "reserve on-N / off-N", *per_round(on_off)])
    rows.append(["ratio", "reserve / trivial", *per_round(over_trivial)])
    header = ["phase", "metric", *(c.name for c in configs)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1)) + (":" if i >= 2 else "-") for i, w in enumerate(widths))
    return [line(header), rule + "|", *(line(row) for row in rows)]


def run_matrix(settings: Settings, configs: list[Config], load: Load, rounds: int) -> int:
    """Every configuration once per round; 0 if every invariant check passed, else 1."""
    print(  # noqa: T201
        f"flashsale bench: {', '.join(c.name for c in configs)} (on: rate limits counted, "
        f"quotas too high to refuse; off: RATE_LIMITS_ENABLED=false; N: API processes), "
        f"{rounds} round(s); per phase {load.requests} requests, {load.concurrency} "
        f"concurrent clients ({load.read_concurrency} for stock reads), {load.customers} "
        f"customers, stock {load.stock}; {os.cpu_count()} CPUs, load generator in this "
        f"process, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    results: list[dict[Config, Result]] = []
    failed: list[str] = []
    for number in range(1, rounds + 1):
        results.append({})
        for config in configs:
            try:
                result = run_config(settings, config, load)
            except RuntimeError as exc:
                print(f"flashsale bench: {config.name}: {exc}", file=sys.stderr)  # noqa: T201
                return 1
            results[-1][config] = result
            if not result.ok:
                failed.append(f"{config.name} round {number}")
            print(f"\n{config.name}, round {number} of {rounds}:", flush=True)  # noqa: T201
            print("\n".join(f"  {line}" for line in result.lines), flush=True)  # noqa: T201
    title = "medians of " + (f"{rounds} rounds" if rounds > 1 else "1 round")
    print(f"\n{title}, load average now {os.getloadavg()[0]:.2f}:")  # noqa: T201
    print("\n".join(table(configs, results)))  # noqa: T201
    print(  # noqa: T201
        "invariants: " + ("OK in every run" if not failed else "FAILED in " + ", ".join(failed))
    )
    return 0 if not failed else 1
