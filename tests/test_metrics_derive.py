"""Rates, ratios, latency bounds and history derived from metrics polls."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nydus_console.metrics.derive import (
    HungTracker,
    MetricsHistory,
    daemon_figures,
    increase,
    quantile_bound,
    rate,
)
from nydus_console.metrics.model import (
    NYDUSD_LATENCY_BOUNDS_US,
    READ_FOP,
    DaemonSample,
    NodeSample,
)

FOP_COUNT = 15


def fops(read: float) -> list[float]:
    """A 15-entry fop counter list with `read` at the index of Read."""
    values = [0.0] * FOP_COUNT
    values[READ_FOP] = read
    return values


def daemon(
    *,
    pid: int = 100,
    data_read: float = 0,
    read_hits: float = 0,
    read_errors: float = 0,
    read_latency_us: float = 0,
    latency: list[float] | None = None,
    cache: dict[str, Any] | None = None,
    backend: dict[str, Any] | None = None,
    inflight: list[dict[str, Any]] | None = None,
    daemon_id: str = "d1",
) -> DaemonSample:
    fs = {
        "data_read": data_read,
        "fop_hits": fops(read_hits),
        "fop_errors": fops(read_errors),
        "fop_cumulative_latency_total": fops(read_latency_us),
        "read_latency_dist": latency if latency is not None else [0.0] * 8,
    }
    return DaemonSample(
        id=daemon_id,
        pid=pid,
        fs=fs,
        cache=cache,
        backend=backend,
        inflight=inflight,
    )


# -- rate and increase -----------------------------------------------------------


def test_rate_steady_counter() -> None:
    assert rate([(0.0, 100.0), (2.0, 300.0), (4.0, 500.0)]) == 100.0


def test_rate_after_counter_reset() -> None:
    # The drop at t=2 is a restart, so only the points from t=2 on count.
    points = [(0.0, 100.0), (1.0, 200.0), (2.0, 50.0), (3.0, 150.0)]
    assert rate(points) == 100.0


def test_rate_right_after_reset_is_none() -> None:
    assert rate([(0.0, 900.0), (1.0, 10.0)]) is None


def test_rate_needs_two_points_and_time() -> None:
    assert rate([]) is None
    assert rate([(5.0, 10.0)]) is None
    assert rate([(5.0, 10.0), (5.0, 20.0)]) is None


def test_increase_after_counter_reset() -> None:
    points = [(0.0, 100.0), (1.0, 200.0), (2.0, 50.0), (4.0, 80.0)]
    assert increase(points) == 30.0


def test_increase_needs_two_points() -> None:
    assert increase([]) is None
    assert increase([(0.0, 7.0)]) is None
    assert increase([(0.0, 7.0), (1.0, 7.0)]) == 0.0


def test_several_resets_use_last() -> None:
    points = [(0.0, 10.0), (1.0, 2.0), (2.0, 8.0), (3.0, 1.0), (5.0, 5.0)]
    assert rate(points) == 2.0
    assert increase(points) == 4.0


counter_values = st.floats(min_value=0, max_value=1e15, allow_nan=False)
time_gaps = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)


@given(st.lists(st.tuples(time_gaps, counter_values), max_size=40))
def test_rate_never_negative(steps: list[tuple[float, float]]) -> None:
    points = []
    now = 0.0
    for gap, value in steps:
        now += gap
        points.append((now, value))
    found = rate(points)
    assert found is None or found >= 0
    grown = increase(points)
    assert grown is None or grown >= 0


@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6, allow_nan=False), counter_values),
        max_size=40,
    )
)
def test_rate_never_negative_unordered_times(points: list[tuple[float, float]]) -> None:
    found = rate(points)
    assert found is None or found >= 0


# -- quantile_bound on nydusd's buckets --------------------------------------------


def test_quantile_bound_picks_bucket_bounds() -> None:
    counts = [50.0, 30.0, 15.0, 4.0, 1.0, 0.0, 0.0, 0.0]
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, counts, 0.5) == 200
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, counts, 0.9) == 20_000
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, counts, 0.99) == 50_000
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, counts, 1.0) == 500_000


def test_quantile_bound_open_bucket() -> None:
    # The eighth bucket (>2 s) has no upper bound.
    slow = [0.0] * 7 + [4.0]
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, slow, 0.5) == math.inf
    tail = [98.0, 0, 0, 0, 0, 0, 0, 2.0]
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, tail, 0.5) == 200
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, tail, 0.99) == math.inf


def test_quantile_bound_seven_seconds_bucket() -> None:
    counts = [0.0] * 6 + [10.0, 0.0]
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, counts, 0.5) == 2_000_000


def test_quantile_bound_without_samples() -> None:
    assert quantile_bound(NYDUSD_LATENCY_BOUNDS_US, [0.0] * 8, 0.5) is None


# -- DaemonFigures from a window ---------------------------------------------------


def busy_window() -> list[tuple[float, DaemonSample]]:
    before = daemon(
        data_read=1_000,
        read_hits=10,
        read_errors=0,
        read_latency_us=1_000,
        latency=[100, 10, 5, 0, 0, 0, 0, 0],
        cache={"partial_hits": 0, "whole_hits": 10, "total": 20},
    )
    after = daemon(
        data_read=5_000,
        read_hits=30,
        read_errors=5,
        read_latency_us=5_000,
        # The increase over the window: 40 at <=200us, 40 at <=1ms and 19 at
        # <=20ms, and one above 2 s.
        latency=[140, 50, 24, 0, 0, 0, 0, 1],
        cache={"partial_hits": 10, "whole_hits": 40, "total": 80},
    )
    return [(0.0, before), (2.0, after)]


def test_figures_read_rate_and_errors() -> None:
    figures = daemon_figures(busy_window())
    assert figures.read_bps == 2_000.0
    assert figures.read_ops == 10.0
    # 20 successful reads and 5 failed ones in the window.
    assert figures.read_error_ratio == 5 / 25
    assert figures.read_avg_latency_us == 4_000 / 20
    assert figures.restarted is False


def test_figures_latency_bounds() -> None:
    figures = daemon_figures(busy_window())
    assert figures.latency_p50_us == 1_000
    assert figures.latency_p90_us == 20_000
    assert figures.latency_p99_us == 20_000
    worse = busy_window()
    worse[1][1].fs["read_latency_dist"] = [140, 50, 24, 0, 0, 0, 0, 11]  # type: ignore[index]
    assert daemon_figures(worse).latency_p99_us == math.inf
    assert daemon_figures(worse).latency_p50_us == 1_000


def test_cache_hit_ratio_over_interval() -> None:
    figures = daemon_figures(busy_window())
    # (10 partial + 30 whole) of 60 requests in the window, not the lifetime
    # ratio of (10 + 40) / 80.
    assert figures.cache_hit_ratio == 40 / 60


def test_cache_hit_ratio_cumulative_when_idle() -> None:
    cache = {"partial_hits": 10, "whole_hits": 40, "total": 80}
    window = [(0.0, daemon(cache=dict(cache))), (2.0, daemon(cache=dict(cache)))]
    assert daemon_figures(window).cache_hit_ratio == 50 / 80


def test_cache_hit_ratio_single_sample() -> None:
    cache = {"partial_hits": 1, "whole_hits": 2, "total": 4, "data_all_ready": True}
    figures = daemon_figures([(0.0, daemon(cache=cache))])
    assert figures.cache_hit_ratio == 3 / 4
    assert figures.data_all_ready is True
    assert figures.read_bps is None


def test_backend_figures() -> None:
    # nydusd counts every backend read in read_count, failed ones too, and
    # the failed ones again in read_errors (BackendMetrics::end).
    before = daemon(
        backend={
            "read_count": 100,
            "read_errors": 0,
            "read_amount_total": 0,
            "read_cumulative_latency_millis_total": 1_000,
        }
    )
    after = daemon(
        backend={
            "read_count": 140,
            "read_errors": 4,
            "read_amount_total": 4_000,
            "read_cumulative_latency_millis_total": 1_800,
        }
    )
    figures = daemon_figures([(0.0, before), (4.0, after)])
    assert figures.backend_bps == 1_000.0
    assert figures.backend_error_ratio == 4 / 40
    assert figures.backend_avg_latency_ms == 800 / 40


def test_restart_by_pid_with_smaller_counters() -> None:
    window = [
        (0.0, daemon(pid=100, data_read=50_000, read_hits=500)),
        (2.0, daemon(pid=200, data_read=1_000, read_hits=3)),
    ]
    figures = daemon_figures(window)
    assert figures.restarted is True
    assert figures.read_bps is None
    assert figures.read_ops is None


def test_restart_by_pid_with_larger_counters() -> None:
    # The new process already read more than the old one had: the counters
    # still belong to two processes, so no rate spans them.
    window = [
        (0.0, daemon(pid=100, data_read=1_000, read_hits=3)),
        (2.0, daemon(pid=200, data_read=90_000, read_hits=700)),
    ]
    figures = daemon_figures(window)
    assert figures.restarted is True
    assert figures.read_bps is None
    assert figures.read_ops is None
    assert figures.read_error_ratio is None


def test_rate_resumes_after_restart() -> None:
    window = [
        (0.0, daemon(pid=100, data_read=50_000)),
        (2.0, daemon(pid=200, data_read=1_000)),
        (4.0, daemon(pid=200, data_read=3_000)),
    ]
    figures = daemon_figures(window)
    assert figures.restarted is False
    assert figures.read_bps == 1_000.0


def test_restart_without_pid_by_counter_drop() -> None:
    # Without the system controller there is no PID, so a drop shows the restart.
    window = [
        (0.0, daemon(pid=0, data_read=50_000)),
        (2.0, daemon(pid=0, data_read=1_000)),
    ]
    figures = daemon_figures(window)
    assert figures.restarted is True
    assert figures.read_bps is None


def test_figures_json_writes_inf_as_text() -> None:
    worse = busy_window()
    worse[1][1].fs["read_latency_dist"] = [100, 10, 5, 0, 0, 0, 0, 99]  # type: ignore[index]
    document = daemon_figures(worse).as_json()
    assert document["latency_p99_us"] == "inf"
    assert document["read_bps"] == 2_000.0


# -- hung I/O ----------------------------------------------------------------------


def request(unique: int) -> dict[str, Any]:
    return {"inode": 7, "opcode": 15, "unique": unique, "timestamp_secs": 1}


def test_hung_tracker_counts_long_requests() -> None:
    tracker = HungTracker(threshold=10.0)
    assert tracker.update(0.0, [request(1)]) == 0
    assert tracker.update(5.0, [request(1), request(2)]) == 0
    assert tracker.update(10.0, [request(1), request(2)]) == 1
    assert tracker.update(15.0, [request(1), request(2)]) == 2


def test_hung_tracker_forgets_finished() -> None:
    tracker = HungTracker(threshold=10.0)
    tracker.update(0.0, [request(1)])
    assert tracker.update(6.0, []) == 0
    # The same unique id seen again starts a new wait.
    assert tracker.update(12.0, [request(1)]) == 0
    assert tracker.update(22.0, [request(1)]) == 1


def test_hung_tracker_unknown_inflight() -> None:
    tracker = HungTracker(threshold=1.0)
    tracker.update(0.0, [request(1)])
    assert tracker.update(5.0, None) is None


# -- MetricsHistory ----------------------------------------------------------------


def node_sample(at: float, *daemons: DaemonSample, error: str = "") -> NodeSample:
    return NodeSample(
        "node-a", at, 1_700_000_000 + at, "node", list(daemons), error=error
    )


def test_history_rates_between_polls() -> None:
    history = MetricsHistory()
    first = history.add(node_sample(0.0, daemon(data_read=0)))
    assert first.daemons["d1"].read_bps is None
    second = history.add(node_sample(2.0, daemon(data_read=4_000)))
    assert second.daemons["d1"].read_bps == 2_000.0
    assert second.read_bps == 2_000.0
    assert history.spark("node-a", "d1", "read_bps") == [2_000.0]


def test_history_forgets_vanished_daemons() -> None:
    history = MetricsHistory()
    history.add(node_sample(0.0, daemon(data_read=0), daemon(daemon_id="d2")))
    history.add(node_sample(2.0, daemon(data_read=2_000), daemon(daemon_id="d2")))
    assert history.spark("node-a", "d2", "read_bps") == [0.0]
    history.add(node_sample(4.0, daemon(data_read=4_000)))
    assert history.spark("node-a", "d2", "read_bps") == []
    # d2 comes back with a new counter series and gets no rate from old samples.
    again = history.add(node_sample(6.0, daemon(daemon_id="d2", data_read=9_000)))
    assert again.daemons["d2"].read_bps is None
    assert set(again.daemons) == {"d2"}


def test_history_keeps_daemons_of_unreachable_node() -> None:
    history = MetricsHistory()
    history.add(node_sample(0.0, daemon(data_read=0)))
    down = history.add(node_sample(2.0, error="connection refused"))
    assert down.error == "connection refused"
    assert down.severity() == 3
    back = history.add(node_sample(4.0, daemon(data_read=8_000)))
    assert back.daemons["d1"].read_bps == 2_000.0


def test_history_hung_io_per_daemon() -> None:
    history = MetricsHistory()
    history.add(node_sample(0.0, daemon(inflight=[request(9)])))
    later = history.add(node_sample(12.0, daemon(inflight=[request(9)])))
    assert later.daemons["d1"].inflight == 1
    assert later.daemons["d1"].hung_io == 1
    assert later.hung_io == 1.0
    assert later.severity() == 2


def test_history_window_spans_rate_span() -> None:
    history = MetricsHistory()
    history.add(node_sample(0.0, daemon(data_read=0)), rate_span=100.0)
    history.add(node_sample(10.0, daemon(data_read=100)), rate_span=100.0)
    figures = history.add(node_sample(20.0, daemon(data_read=1_000)), rate_span=100.0)
    # Over the whole span: 1000 bytes in 20 s, not the last step's 90 B/s.
    assert figures.daemons["d1"].read_bps == 50.0
