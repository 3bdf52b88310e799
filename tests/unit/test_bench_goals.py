"""The bench's verdicts on issue 5's goals: bounds in the right direction, figures that a partial run lacks
are left out (``make bench`` itself is not part of ``make test``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bench.run import figure, goals


def _accept(ratio: float, p99_ms: float) -> dict[str, Any]:
    return figure("accept rps sqlite c=16", ratio * 1000, 1000, "req/s", gateway={"p99_ms": p99_ms})


@pytest.mark.parametrize(
    ("ratio", "p99_ms", "expected"),
    [
        (0.6, 50.0, [True, True]),  # the bounds themselves are met
        (0.59, 50.01, [False, False]),
        (0.9, 12.0, [True, True]),
        (0.3, 35.0, [False, True]),
    ],
)
def test_accept_goals_judge_ratio_at_least_and_p99_at_most(
    ratio: float, p99_ms: float, expected: list[bool]
) -> None:
    verdicts = goals([_accept(ratio, p99_ms)])
    assert [v["measure"] for v in verdicts] == ["ratio", "p99_ms"]
    assert [v["met"] for v in verdicts] == expected
    assert verdicts[0]["at_least"] == 0.6
    assert verdicts[1]["at_most"] == 50.0


def test_drain_claim_and_latency_goals() -> None:
    figures = [
        figure("drain no-op sqlite", 2500, None, "msg/s"),
        figure("drain no-op postgresql", 4999, None, "msg/s"),
        figure("drain mTLS sqlite", 81, 100, "msg/s"),
        figure("e2e latency p95 idle", 251, 250, "ms"),
        figure("claim p99 done=0 pending=10000", 4.0, 4.0, "ms"),
        figure("claim p99 done=1000000 pending=100000", 9.0, 4.0, "ms"),
    ]
    verdicts = {(v["figure"], v["measure"]): v["met"] for v in goals(figures)}
    assert verdicts == {
        ("drain no-op sqlite", "value"): True,
        ("drain no-op postgresql", "value"): False,
        ("drain mTLS sqlite", "ratio"): True,
        ("e2e latency p95 idle", "value"): False,
        ("claim p99 done=0 pending=10000", "value"): True,
        ("claim p99 done=1000000 pending=100000", "value"): True,
        # within 10 ms but 2.25 times the empty history: not flat
        ("claim p99 done=1000000 pending=100000", "ratio"): False,
    }


def test_a_partial_run_judges_only_what_it_measured() -> None:
    assert goals([]) == []


def test_the_bench_apps_get_a_config_the_gateway_accepts(tmp_path: Path) -> None:
    """The bare and durable apps of the bench run on a config the harness writes (a web port included):
    ``make bench`` is not in ``make test``, so this is where a config it cannot start on shows."""
    from gateway.certs import generate_example_pki
    from gateway.config import load_config
    from tests.bench.run import AppProcess
    from tests.integration.harness import GatewayProcess

    pki = generate_example_pki(tmp_path / "pki")
    gateway = GatewayProcess(pki, f"sqlite:///{tmp_path / 'b.db'}", tmp_path, threads=8, catalogue=None)
    app = AppProcess(gateway, "baseline")
    app.prepare()
    assert load_config(tmp_path / "baseline.toml").web.bind.endswith(f":{gateway.web_port}")
