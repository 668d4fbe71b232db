"""`flashsale bench` as a user runs it: a tiny matrix end to end (real server, embedded
stores, the invariant audit), and the options it refuses."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.settings import Settings, load_settings
from flashsale import bench_matrix
from flashsale.bench import Config, Load, Phase, Result
from flashsale.bench_matrix import parse_configs, table
from tests.processes import base_env

HANG_GUARD_SECONDS = 180


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashsale", "bench", *args],
        env=base_env(DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )


def test_a_tiny_run_sells_exactly_the_stock_and_prints_the_table(tmp_path: Path) -> None:
    result = _bench(
        tmp_path, "--requests", "50", "--concurrency", "5", "--stock", "20", "--configs", "off-1"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "stock 20: 20 reserved (expected 20), then sold 20, held 0" in out
    assert "OUT_OF_STOCK 30" in out
    (header,) = [line for line in out.splitlines() if line.startswith("| phase ")]
    assert header.split("|")[3].strip() == "off-1"
    for phase in ("trivial query", "reserve", "stock read", "checkout"):
        for metric in (
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "generator CPU s",
            "server CPU s",
            "server CPU ms/req",
        ):
            assert any(
                line.startswith(f"| {phase}") and f"| {metric}" in line for line in out.splitlines()
            ), (phase, metric)
    assert "| reserve / trivial" in out
    assert out.rstrip().endswith("invariants: OK in every run")


def test_the_waiting_room_stampede_sells_the_units_with_and_without_the_room(
    tmp_path: Path,
) -> None:
    """60 shoppers for 6 units: without the room the fastest win and the rest are refused;
    with it only admitted shoppers reserve, so no reserve is refused."""
    result = _bench(
        tmp_path,
        *("--requests", "20", "--concurrency", "5", "--stock", "5", "--customers", "5"),
        *("--configs", "off-1", "--waiting-room", "60"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "  waiting room: 60 shoppers for 6 units, one unit each" in lines
    (without,) = [line for line in lines if "without the waiting room:" in line]
    (with_room,) = [line for line in lines if "with the waiting room:" in line]
    assert "60 shoppers, 6 units: 60 reserve calls" in without
    assert "54 refused" in without
    assert "sold out" in without
    assert "not sold out" not in without
    assert "6 units: 6 reserve calls" in with_room
    assert "0 refused" in with_room
    assert with_room.endswith("| RESERVED 6")


@pytest.mark.parametrize(
    ("text", "configs"),
    [
        ("off-1", [Config(rate_limits=False, workers=1)]),
        (
            "on-1, off-2",
            [Config(rate_limits=True, workers=1), Config(rate_limits=False, workers=2)],
        ),
    ],
)
def test_configs_are_named_by_limits_and_processes(text: str, configs: list[Config]) -> None:
    assert parse_configs(text) == configs
    assert [c.name for c in configs] == [p.strip() for p in text.split(",")]


@pytest.mark.parametrize("text", ["on", "off-0", "maybe-1", "on-1,on-1", "on-x", ""])
def test_a_bad_config_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="--configs"):
        parse_configs(text)


@pytest.mark.parametrize(
    "args",
    [
        ["--configs", "on-1", "--workers", "2"],
        ["--configs", "on-1", "--rate-limits"],
        ["--configs", "sideways-1"],
        ["--rounds", "0"],
        ["--workers", "0"],
        ["--waiting-room", "-1"],
    ],
)
def test_contradictory_or_empty_options_end_in_one_line(tmp_path: Path, args: list[str]) -> None:
    result = _bench(tmp_path, *args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("flashsale")


def _result(config: Config, trivial: float, reserve: float, *, ok: bool = True) -> Result:
    """A run whose phases each took one second at these rates."""
    phases = {
        name: Phase(name, int(rate), 1.0, [10.0] * int(rate), Counter(ok=int(rate)))
        for name, rate in (
            ("trivial query", trivial),
            ("reserve", reserve),
            ("stock read", 100),
            ("checkout", 10),
        )
    }
    return Result(config, phases, ["a line"], ok)


ON_1 = Config(rate_limits=True, workers=1)
OFF_1 = Config(rate_limits=False, workers=1)


def _row(lines: list[str], metric: str) -> list[str]:
    (row,) = [line for line in lines if f"| {metric} " in line]
    return [cell.strip() for cell in row.strip("|").split("|")][2:]


def test_the_table_shows_medians_and_the_ratios_within_a_round() -> None:
    rounds = [
        {ON_1: _result(ON_1, 1000, 300), OFF_1: _result(OFF_1, 2000, 500)},
        {ON_1: _result(ON_1, 1000, 200), OFF_1: _result(OFF_1, 2000, 1000)},
        {ON_1: _result(ON_1, 1000, 400), OFF_1: _result(OFF_1, 2000, 400)},
    ]

    lines = table([ON_1, OFF_1], rounds)

    assert lines[0].split("|")[3:5] == ["  on-1 ", " off-1 "]
    (reserve_rate,) = [line for line in lines if line.startswith("| reserve ") and "req/s" in line]
    assert [cell.strip() for cell in reserve_rate.split("|")[3:5]] == ["300", "500"]
    # Per round 0.60, 0.20, 1.00 (not 300 / 500 of the medians, which happens to agree).
    assert _row(lines, "reserve on-N / off-N") == ["0.60", "-"]
    assert _row(lines, "reserve / trivial") == ["0.30", "0.25"]


def test_a_failed_invariant_makes_the_command_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = iter([True, False, True])

    def run(settings: Settings, config: Config, load: Load) -> Result:
        return _result(config, 1000, 300, ok=next(runs))

    monkeypatch.setattr(bench_matrix, "run_config", run)
    load = Load(requests=1, concurrency=1, read_concurrency=1, stock=1, customers=1)

    assert bench_matrix.run_matrix(load_settings(_env_file=None), [ON_1], load, rounds=3) == 1
