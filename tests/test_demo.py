"""``python -m fastinit demo``: the quick configuration end to end (tables, verdicts, lessons
backed by the run's numbers, files, reproducibility, errors), and the pieces it is built from."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

import fastinit
from fastinit import demo
from fastinit.cli import main as cli_main
from fastinit.demo.experiment import LARGE, LSUV, SMALL, Result, Settings
from fastinit.demo.lessons import format_summary, layer_factor, lessons
from fastinit.demo.progress import Progress
from fastinit.watch import verdict

pytestmark = pytest.mark.backends("numpy")  # the demo's numbers do not depend on the backend

INITS = demo.INIT_LABELS
PNGS = ("activations.png", "gradients.png", "histograms.png", "training.png",
        "training_histograms.png")


def _run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["demo"] + args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run through the CLI dispatcher."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("demo")
    code, text, err = _run(["--quick", "--out", str(out), "--seed", "5"])
    doc = json.loads((out / "summary.json").read_text())
    res = {(r["depth"], r["activation"], r["init"]): r for r in doc["results"]}
    return code, text, err, out, doc, res


def test_quick_demo_prints_tables_verdicts_and_summary(quick_run):
    code, text, err, out, _, _ = quick_run
    assert code == 0
    for needle in ("At initialization", "Activations: std across the batch", "Gradients dL/dh",
                   "Training:", "Summary", "depth 8, tanh", "vanishing", "healthy", "saturated",
                   "exploding", "What this run shows", str(out)) + INITS:
        assert needle in text, needle
    assert "%" in err and "training depth 8, sigmoid" in err   # progress, on stderr
    assert "[" not in text.splitlines()[0]


def test_quick_demo_verdicts_match_theory(quick_run):
    *_, res = quick_run
    assert len(res) == 2 * 3 * len(INITS)
    for depth in (4, 8):
        # tiny weights: the signal shrinks ~ x0.01·sqrt(32) per layer, both ways; for sigmoid
        # too (its units sit at 0.5 + a constant: the spread across the batch vanishes)
        for act in ("tanh", "relu", "sigmoid"):
            assert res[(depth, act, SMALL)]["activation_verdict"] == "vanishing"
            assert res[(depth, act, SMALL)]["gradient_verdict"] == "vanishing"
        # unit variance: ReLU explodes, the bounded activations saturate
        assert res[(depth, "relu", LARGE)]["activation_verdict"] == "exploding"
        assert res[(depth, "tanh", LARGE)]["activation_verdict"] == "saturated"
        assert res[(depth, "sigmoid", LARGE)]["activation_verdict"] == "saturated"
        for act in ("tanh", "relu"):
            for init in ("Kaiming", "LeCun", "LSUV"):
                assert res[(depth, act, init)]["activation_verdict"] == "healthy", (act, init)
                assert res[(depth, act, init)]["gradient_verdict"] == "healthy", (act, init)
        # the edge of chaos for sigmoid: gradients flow (the units are near their bounds)
        assert res[(depth, "sigmoid", "critical")]["gradient_verdict"] == "healthy"
    # the vanished nets stay at the loss of chance, the healthy ones learn
    for depth in (4, 8):
        for act in ("tanh", "relu"):
            r = res[(depth, act, SMALL)]
            assert r["final_loss"] > 2.2 and r["outcome"] == "stuck"
        assert res[(depth, "tanh", "Xavier")]["outcome"] == "trained"
    assert res[(8, "relu", LARGE)]["outcome"] in ("diverged", "stuck")


def test_every_number_in_the_lessons_is_the_runs(quick_run):
    """Each 'init NN%' in the summary and the lessons is that run's test accuracy."""
    _, text, _, _, doc, res = quick_run
    tail = text[text.index("Summary:"):]
    init_pat = "|".join(re.escape(i) for i in sorted(INITS, key=len, reverse=True))
    checked = 0
    for line in tail.splitlines():
        m = re.match(r"\s+depth (\d+), (\w+):", line)
        if m:   # summary line: every "init NN%" of this (depth, activation)
            depth, act = int(m.group(1)), m.group(2)
            for init, pct in re.findall(rf"({init_pat}) (\d+)%", line):
                assert round(100 * res[(depth, act, init)]["test_accuracy"]) == int(pct), line
                checked += 1
    # lessons: "depth D act init-outcome NN%" (LSUV's) and the ReLU/sigmoid comparisons
    lesson_text = " ".join(le["text"] for le in doc["lessons"])
    for depth, act, outcome, pct in re.findall(r"depth (\d+) (\w+) (trained|learning|stuck) "
                                               r"(\d+)%", lesson_text):
        r = res[(int(depth), act, LSUV)]
        assert r["outcome"] == outcome and round(100 * r["test_accuracy"]) == int(pct)
        checked += 1
    for depth, rest in re.findall(r"Sigmoid at depth (\d+): best ([^;.]*)", lesson_text):
        for init, pct in re.findall(rf"({init_pat}) (\d+)%", rest):
            assert round(100 * res[(int(depth), "sigmoid", init)]["test_accuracy"]) == int(pct)
            checked += 1
    assert checked >= 20
    # the counts in the verdict-vs-training lesson
    m = re.search(r"not trained, in (\d+) of (\d+) nets", lesson_text)
    agree = sum(1 for r in doc["results"] if (r["activation_verdict"] == r["gradient_verdict"]
                                              == "healthy") == (r["outcome"] == "trained"))
    assert m and (int(m.group(1)), int(m.group(2))) == (agree, len(doc["results"]))


def test_quick_demo_files(quick_run):
    _, _, _, out, doc, _ = quick_run
    for name in PNGS:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000, name
    rows = list(csv.DictReader((out / "stats.csv").open()))
    assert len(rows) == 3 * len(INITS) * (5 + 9)        # layers 0..4 and 0..8
    steps = doc["settings"]["steps"]
    rows = list(csv.DictReader((out / "training.csv").open()))
    assert len(rows) == 2 * 3 * len(INITS) * steps
    assert sum(1 for r in rows if r["test_accuracy"]) == 2 * 3 * len(INITS) * 10
    assert not any(n.startswith(".fastinit-write-check") for n in os.listdir(out))


def test_steps_zero_says_nothing_about_training(tmp_path):
    code, text, _ = _run(["--quick", "--steps", "0", "--no-plots", "--out", str(tmp_path)])
    assert code == 0
    assert "Training:" not in text and "healthy at init" in text
    tail = text[text.index("What this run shows"):]
    for word in ("learn", "trained", "stuck", "accuracy", "loss"):
        assert word not in tail, word


def test_same_seed_same_numbers(tmp_path):
    args = ["--quick", "--steps", "5", "--no-plots", "--no-progress", "--seed", "11"]
    texts = []
    for i in range(2):
        assert demo.main(args + ["--out", str(tmp_path / str(i))]) == 0
        texts.append((tmp_path / str(i) / "training.csv").read_text()
                     + (tmp_path / str(i) / "stats.csv").read_text())
    assert texts[0] == texts[1]
    assert demo.main(["--quick", "--steps", "5", "--no-plots", "--no-progress", "--seed", "12",
                      "--out", str(tmp_path / "other")]) == 0
    other = (tmp_path / "other" / "training.csv").read_text() \
        + (tmp_path / "other" / "stats.csv").read_text()
    assert other != texts[0] and len(other.splitlines()) == len(texts[0].splitlines())


# --------------------------------------------------------------------------- the lessons

def _result(depth, act, init, stds, grads, outcome_acc=None, slopes=None, zeros=None):
    r = Result(depth, act, init)
    r.act_std = list(stds)
    r.act_slope = list(slopes) if slopes is not None else [math.nan] * len(stds)
    r.act_zeros = list(zeros) if zeros is not None else [0.0] * len(stds)
    r.act_verdict = verdict(stds, slopes=r.act_slope)
    r.grad_std = list(grads)
    r.grad_verdict = verdict(grads[::-1])
    if outcome_acc is not None:
        r.test_accuracy = outcome_acc
        r.losses = [2.3, 1.0]
    return r


def test_lessons_follow_the_numbers_not_a_script():
    s = Settings(depths=(3,), width=64, steps=100, inits=(SMALL, "Kaiming"),
                 activations=("tanh",))
    # N(0, 0.01²) that does NOT vanish here (made-up profile): the lesson must not say it does
    healthy_small = _result(3, "tanh", SMALL, [1.0, 0.5, 0.4, 0.3], [1.0, 1.0, 1.0], 0.95)
    kaiming = _result(3, "tanh", "Kaiming", [1.0, 0.6, 0.6, 0.6], [1.0, 1.0, 1.0], 0.97)
    texts = [le.text for le in lessons([healthy_small, kaiming], s, trained=True)]
    assert any("No net here has both activations and gradients vanishing" in t for t in texts)
    assert not any("vanish in every net" in t for t in texts)
    assert any("trained or learning anyway" in t for t in texts)
    # and when it does vanish and stays at chance
    small = _result(3, "tanh", SMALL, [1.0, 0.08, 0.006, 5e-4], [1e-6, 1e-4, 1e-2], 0.08)
    texts = [le.text for le in lessons([small, kaiming], s, trained=True)]
    small_text = next(t for t in texts if t.startswith(SMALL))
    assert "vanish in every net here" in small_text and "none of them learns" in small_text
    # its measured per-layer factor is the profile's own
    factor = layer_factor([1.0, 0.08, 0.006, 5e-4])
    assert factor == pytest.approx((5e-4 / 0.08) ** 0.5)
    assert f"by x{factor:.2g} (" in small_text
    # without training: no word about it
    texts = [le.text for le in lessons([small, kaiming], s, trained=False)]
    assert not any("learn" in t or "%" in t for t in texts)


def test_relu_lesson_says_what_happened_at_depth():
    s = Settings(depths=(2, 6), width=64, steps=100, inits=("LeCun", "Kaiming"),
                 activations=("relu",))
    lec = [1.0] + [0.7 ** i for i in range(1, 7)]
    he = [1.0] + [0.95 ** i for i in range(1, 7)]
    rs = [_result(2, "relu", "LeCun", lec[:3], [1, 1], 0.9, zeros=[0, .5, .5]),
          _result(2, "relu", "Kaiming", he[:3], [1, 1], 0.95, zeros=[0, .5, .5]),
          _result(6, "relu", "LeCun", lec, [1] * 6, 0.3, zeros=[0] + [.5] * 6),
          _result(6, "relu", "Kaiming", he, [1] * 6, 0.9, zeros=[0] + [.5] * 6)]
    text = next(le.text for le in lessons(rs, s, True) if le.text.startswith("ReLU"))
    assert "sets 50% of its outputs to 0" in text
    assert "At depth 6 that is the difference: Kaiming trains (90%)" in text
    rs[3].test_accuracy = 0.5                     # Kaiming not trained at depth 6 either
    text = next(le.text for le in lessons(rs, s, True) if le.text.startswith("ReLU"))
    assert "that is the difference" not in text
    assert "Test accuracy at depth 6: LeCun 30% (learning), Kaiming 50% (learning)" in text


def test_summary_lists_each_init_under_its_outcome():
    rs = [_result(3, "tanh", SMALL, [1, 1e-2, 1e-4, 1e-6], [1e-6, 1e-3, 1], 0.08),
          _result(3, "tanh", "Xavier", [1, .6, .5, .5], [1, 1, 1], 0.96)]
    text = format_summary(rs, trained=True)
    assert "trained: Xavier 96%" in text and "stuck: N(0, 0.01²) 8%" in text
    text = format_summary(rs, trained=False)
    assert "healthy at init: Xavier" in text and "N(0, 0.01²) (vanishing / vanishing)" in text


# ------------------------------------------------------------------------------ the pieces

def test_side_by_side_stack_has_the_weights_and_outputs_of_build_mlp(rng):
    seed = int(rng.integers(1 << 31))
    x = torch.from_numpy(rng.standard_normal((5, 64)).astype(np.float32))
    inits = list(INITS)
    models = [demo.build_mlp(3, 16, "tanh", init, seed, batch=x) for init in inits]
    stack = demo.SideBySide(models, "tanh")
    for g, (init, model) in enumerate(zip(inits, models)):
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        assert len(linears) == len(stack.weights) == 4
        for lin, w, b in zip(linears, stack.weights, stack.biases):
            assert torch.equal(lin.weight, w[g].detach())
            assert torch.equal(b[g, 0].detach(), lin.bias.detach())
        # a batched matmul sums in another order than Linear: float32 rounding of sums whose
        # terms reach ~10 under N(0, 1) (seen: 4e-6 on 0.14); a wrong weight would differ by ~1
        torch.testing.assert_close(stack(x)[g], model(x), rtol=1e-4, atol=2e-5)
    # the tapped stack computes the same
    tapped = demo.SideBySide(models, "tanh", taps=[1, 3])
    torch.testing.assert_close(tapped(x), stack(x))
    # models of one depth draw the same standard normals: the scaled inits are multiples
    w_small, w_large = (m.fc2.weight for m in models[:2])
    torch.testing.assert_close(w_large, w_small * 100, rtol=1e-5, atol=0)


def test_inits_have_their_documented_std(rng):
    w = torch.empty(256, 512)
    seed = int(rng.integers(1 << 31))
    expected = {SMALL: 0.01, LARGE: 1.0, "LeCun": 1 / math.sqrt(512),
                "Xavier": math.sqrt(2 / (256 + 512)), "Kaiming": math.sqrt(2 / 512)}
    for act in ("tanh", "relu", "sigmoid"):
        expected_c = fastinit.critical_gain(act) / math.sqrt(512)
        for label, std in list(expected.items()) + [("critical", expected_c)]:
            demo._init_fn(label, act)(w, fastinit.Generator(seed))
            assert abs(float(w.double().std()) / std - 1) < 0.02, label
            assert abs(float(w.double().mean())) < 0.02 * std


def test_lsuv_model_has_unit_variance_outputs(rng):
    x = torch.from_numpy(rng.standard_normal((256, 64)).astype(np.float32))
    model = demo.build_mlp(6, 32, "relu", LSUV, 0, batch=x)
    h = x
    with torch.no_grad():
        for m in model:
            h = m(h)
            if isinstance(m, torch.nn.Linear):
                assert abs(float(h.var()) - 1) < 0.1
    with pytest.raises(ValueError, match="LSUV needs a batch"):
        demo.build_mlp(2, 8, "relu", LSUV, 0)


def test_progress_lines_and_bar():
    buf = io.StringIO()
    p = Progress(100, stream=buf)
    p.phase("phase one")
    for _ in range(10):
        p.advance(10)
    p.done()
    lines = buf.getvalue().splitlines()
    assert lines[0].strip().startswith("[  0%") and lines[-1].strip().startswith("[100%")
    assert 10 <= len(lines) <= 12

    class Tty(io.StringIO):
        def isatty(self):
            return True
    tty = Tty()
    p = Progress(4, stream=tty)
    p.phase("x")
    p.advance(2)
    assert "\r[" in tty.getvalue() and "50%" in tty.getvalue() and "\n" not in tty.getvalue()
    silent = io.StringIO()
    Progress(4, stream=silent, enabled=False).advance(4)
    assert silent.getvalue() == ""


def test_bad_arguments_have_clear_errors(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA"):
            demo.main(["--quick", "--device", "cuda", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--lr > 0"):
        demo.main(["--quick", "--lr", "0", "--out", str(tmp_path)])


def test_unwritable_out_is_one_line_and_a_nonzero_exit(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "fastinit", "demo", "--quick", "--no-plots",
                           "--out", str(blocker / "out")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastinit demo: cannot write to --out")
    assert proc.stdout == ""


def test_without_torch_the_message_names_the_cpu_build(monkeypatch):
    from fastinit.demo import cli
    monkeypatch.setitem(sys.modules, "torch", None)   # import torch raises ImportError
    with pytest.raises(SystemExit) as e:
        cli._imports(no_plots=True)
    msg = str(e.value)
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in msg
    assert "\n" not in msg
