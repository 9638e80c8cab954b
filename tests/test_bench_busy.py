"""The busy-machine benchmark section (timings are measured, never asserted)."""
from __future__ import annotations

import pytest

from fastinit.bench import busy

torch = pytest.importorskip("torch")


def test_busy_cores_spin_while_the_block_runs_and_stop_after():
    with busy.busy_cores(2) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs)


def test_percentiles_are_ordered():
    p = busy.percentiles({"a": lambda: sum(range(100)), "b": lambda: None}, repeats=9)
    for median, p90 in p.values():
        assert 0 < median <= p90


@pytest.mark.backends("native")
def test_busy_rows_cover_quiet_and_busy_runs(monkeypatch):
    monkeypatch.setattr(busy, "SHAPES", {"4096": (4096,)})
    rows = busy.run(quick=False, repeats=3)
    assert [r.section for r in rows] == ["cpu-quiet"] * 2 + ["cpu-busy"] * 2
    assert all("p90" in r.case and set(r.seconds) == {"fastinit", "torch"} for r in rows)
