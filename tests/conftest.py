"""Every test runs once per available backend (compiled core and NumPy): they must agree."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastinit

BACKENDS = fastinit.available_backends()



def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = [b for b in BACKENDS if marker is None or b in marker.args]
        metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture(autouse=True)
def backend(request):
    """The backend a test runs on (every available one unless @pytest.mark.backends says)."""
    name = getattr(request, "param", fastinit.get_backend())
    previous = fastinit.get_backend()
    fastinit.set_backend(name)
    yield name
    fastinit.set_backend(previous)


@pytest.fixture
def rng():
    """Fresh random inputs per test run; the seed is printed on failure via the test id."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def capture_cuda_graph(work):
    """A torch.cuda.CUDAGraph of work(), warmed up first on a side stream as torch recommends."""
    import torch

    warm = torch.cuda.Stream()
    warm.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warm):
        work()
    torch.cuda.current_stream().wait_stream(warm)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        work()
    return graph


def poisoned(shape, dtype, xp="numpy"):
    """An output buffer full of NaN, so any element a kernel fails to write is caught."""
    if xp == "numpy":
        return np.full(shape, np.nan, dtype=dtype)
    import torch
    return torch.full(shape, float("nan"), dtype=dtype)
