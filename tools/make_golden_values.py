"""Write tests/data/golden_v<N>.json: pinned values of random-stream format v<N>.

Run once when a stream format version is created, never to "fix" a failing golden test: a
failure there means users' weights changed. Run from the repository root:

    python tools/make_golden_values.py
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

import fastinit

OUT = (Path(__file__).resolve().parent.parent / "tests" / "data"
       / f"golden_v{fastinit.STREAM_FORMAT_VERSION}.json")
N = 1003
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
CASES = {
    "uniform_(-0.5,2)": (fastinit.uniform_, dict(a=-0.5, b=2.0)),
    "normal_(0.25,1.5)": (fastinit.normal_, dict(mean=0.25, std=1.5)),
    "trunc_normal_()": (fastinit.trunc_normal_, {}),
    "trunc_normal_(std=0.02,a=-0.04,b=0.04)": (fastinit.trunc_normal_, dict(std=0.02, a=-0.04, b=0.04)),
    "trunc_normal_(std=0.02)": (fastinit.trunc_normal_, dict(std=0.02)),  # bounds at 100 std
    "trunc_normal_(a=6,b=7)": (fastinit.trunc_normal_, dict(a=6.0, b=7.0)),
    "trunc_normal_(mean=1,a=-3,b=-2.5)": (fastinit.trunc_normal_, dict(mean=1.0, a=-3.0, b=-2.5)),
}
SEEDS = (0, 20261123)


def bits(t: torch.Tensor) -> bytes:
    view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.contiguous().view(view).numpy().tobytes()


def golden() -> dict:
    table = {}
    for case, (fn, kwargs) in CASES.items():
        for dtype_name, dtype in DTYPES.items():
            for seed in SEEDS:
                t = torch.full((N,), float("nan"), dtype=dtype)
                fn(t, generator=seed, **kwargs)
                raw = bits(t)
                table[f"{case}|{dtype_name}|{seed}"] = {
                    "first": [float(v) for v in t[:8].double()],
                    "sha256": hashlib.sha256(raw).hexdigest(),
                }
    return table


if __name__ == "__main__":
    fastinit.set_backend("numpy")  # the reference implementation
    reference = golden()
    if "native" in fastinit.available_backends():
        fastinit.set_backend("native")
        assert golden() == reference, "native and NumPy backends disagree"
    OUT.write_text(json.dumps({"format": fastinit.STREAM_FORMAT_VERSION, "n": N, "values": reference},
                              indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(reference)} entries)")
