"""``python -m fastinit demo``: the quick configuration end to end (tables, verdicts, files,
reproducibility), and the pieces it is built from."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

import fastinit
from fastinit import demo
from fastinit.cli import main as cli_main

pytestmark = pytest.mark.backends("numpy")  # the demo's numbers do not depend on the backend


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run through the CLI dispatcher (the stats backend is the default one)."""
    pytest.importorskip("matplotlib")
    import contextlib
    import io
    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main(["demo", "--quick", "--out", str(out), "--seed", "5"])
    return code, buf.getvalue(), out


def test_quick_demo_prints_tables_verdicts_and_summary(quick_run):
    code, text, out = quick_run
    assert code == 0
    for needle in ("At initialization", "Activation std per layer", "Gradient std per layer",
                   "Training:", "Summary", "depth 8, tanh", "vanishing", "healthy",
                   "N(0, 0.01²)", "LeCun", "Xavier", "Kaiming"):
        assert needle in text, needle


def test_quick_demo_verdicts_match_theory(quick_run):
    _, _, out = quick_run
    doc = json.loads((out / "summary.json").read_text())
    res = {(r["depth"], r["activation"], r["init"]): r for r in doc["results"]}
    assert len(res) == 2 * 3 * 4
    for depth in (4, 8):
        # tiny weights: the signal shrinks ~ x0.01·sqrt(32) per layer, both ways
        for act in ("tanh", "relu"):
            assert res[(depth, act, "N(0, 0.01²)")]["activation_verdict"] == "vanishing"
            assert res[(depth, act, "N(0, 0.01²)")]["gradient_verdict"] == "vanishing"
        # sigmoid's slope <= 1/4 shrinks the gradients even from a fan-scaled init
        assert res[(depth, "sigmoid", "N(0, 0.01²)")]["gradient_verdict"] == "vanishing"
        for act in ("tanh", "relu"):
            assert res[(depth, act, "Kaiming")]["activation_verdict"] == "healthy"
            assert res[(depth, act, "Kaiming")]["gradient_verdict"] == "healthy"
    # training: the vanished nets stay at the loss of chance, the healthy ones learn
    for depth in (4, 8):
        assert res[(depth, "tanh", "N(0, 0.01²)")]["final_loss"] > 2.2
        assert res[(depth, "tanh", "N(0, 0.01²)")]["outcome"] == "stuck"
    assert res[(4, "tanh", "Xavier")]["final_loss"] < 2.0


def test_quick_demo_files(quick_run):
    _, _, out = quick_run
    for name in ("activation_std.png", "gradient_std.png", "histograms.png", "loss_curves.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000, name
    rows = list(csv.DictReader((out / "stats.csv").open()))
    assert len(rows) == 3 * 4 * (4 + 8)
    doc = json.loads((out / "summary.json").read_text())
    steps = doc["settings"]["steps"]
    rows = list(csv.DictReader((out / "training.csv").open()))
    assert len(rows) == 24 * steps


def test_same_seed_same_numbers(tmp_path, capsys):
    args = ["--quick", "--steps", "5", "--no-plots", "--seed", "11"]
    texts = []
    for i in range(2):
        assert demo.main(args + ["--out", str(tmp_path / str(i))]) == 0
        texts.append((tmp_path / str(i) / "training.csv").read_text()
                     + (tmp_path / str(i) / "stats.csv").read_text())
    assert texts[0] == texts[1]
    assert demo.main(["--quick", "--steps", "5", "--no-plots", "--seed", "12",
                      "--out", str(tmp_path / "other")]) == 0
    other = (tmp_path / "other" / "training.csv").read_text() \
        + (tmp_path / "other" / "stats.csv").read_text()
    assert other != texts[0] and len(other.splitlines()) == len(texts[0].splitlines())


def test_side_by_side_stack_has_the_weights_of_build_mlp(rng):
    seed = int(rng.integers(1 << 31))
    inits = list(demo.INIT_LABELS)
    stack = demo.SideBySide(3, 16, "tanh", inits, seed)
    for g, init in enumerate(inits):
        model = demo.build_mlp(3, 16, "tanh", init, seed)
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        assert len(linears) == len(stack.weights) == 4
        for lin, w, b in zip(linears, stack.weights, stack.biases):
            assert torch.equal(lin.weight, w[g].detach())
            assert torch.equal(b[g].detach(), torch.zeros_like(b[g]))
        # and the same outputs
        x = torch.from_numpy(rng.standard_normal((5, 64)).astype(np.float32))
        torch.testing.assert_close(stack(x)[g], model(x), rtol=1e-5, atol=1e-6)


def test_inits_have_their_documented_std(rng):
    w = torch.empty(256, 512)
    seed = int(rng.integers(1 << 31))
    expected = {"N(0, 0.01²)": 0.01, "LeCun": 1 / math.sqrt(512),
                "Xavier": math.sqrt(2 / (256 + 512)), "Kaiming": math.sqrt(2 / 512)}
    for label, std in expected.items():
        demo._init_fn(label)(w, fastinit.Generator(seed))
        assert abs(float(w.double().std()) / std - 1) < 0.02, label
        assert abs(float(w.double().mean())) < 0.02 * std


def test_bad_arguments_have_clear_errors(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA"):
            demo.main(["--quick", "--device", "cuda", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--lr > 0"):
        demo.main(["--quick", "--lr", "0", "--out", str(tmp_path)])
