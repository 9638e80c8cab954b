"""Where each call's 64-bit key comes from: the key sources of the random stream.

A call draws one fresh key from its generator:

- ``None``: torch's default CPU generator when torch is importable (so ``torch.manual_seed``
  governs fastinit as it governs torch), else fastinit's global generator;
- a ``torch.Generator``: 64 bits drawn from it on the host (a CPU generator draws two 32-bit
  numbers; a CUDA generator hands out its seed and offset and advances the offset, so no
  device synchronisation happens);
- a ``numpy.random.Generator`` (or ``RandomState``): 64 bits drawn from it;
- an ``int``: the seed of a fresh :class:`Generator`, i.e. always the same key;
- a :class:`fastinit.Generator`: its next key.
"""
from __future__ import annotations

import importlib
import threading
from typing import Any, Union

import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(state: int) -> int:
    """The SplitMix64 output function (Steele, Lea, Flood 2014) applied to a 64-bit state."""
    z = state & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class Generator:
    """fastinit's own key generator: a SplitMix64 sequence, one 64-bit key per call.

    >>> g = fastinit.Generator(1234)
    >>> fastinit.normal_(array, generator=g)   # key 1 of seed 1234
    >>> fastinit.normal_(array, generator=g)   # key 2: different values

    ``generator=1234`` (an int) is the same as a fresh ``Generator(1234)`` for one call.
    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> "Generator":
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        with self._lock:
            self._seed = int(seed) & _MASK64
            self._state = self._seed
        return self

    def initial_seed(self) -> int:
        return self._seed

    def next_key(self) -> int:
        with self._lock:
            self._state = (self._state + _GOLDEN) & _MASK64
            return splitmix64(self._state)

    def get_state(self) -> int:
        return self._state

    def set_state(self, state: int) -> None:
        self._state = int(state) & _MASK64

    def __repr__(self) -> str:
        return f"fastinit.Generator(seed={self._seed})"


_global_generator = Generator(0x5EED)
_torch_module: Any = None
_torch_checked = False


def _torch():
    """torch if importable (imported once, lazily), else None."""
    global _torch_module, _torch_checked
    if not _torch_checked:
        try:
            _torch_module = importlib.import_module("torch")
        except ImportError:
            _torch_module = None
        _torch_checked = True
    return _torch_module


def default_generator() -> Generator:
    """fastinit's global generator (the key source for generator=None without torch)."""
    return _global_generator


def manual_seed(seed: int) -> None:
    """Seed the source that ``generator=None`` draws from.

    Seeds fastinit's global generator and, when torch is importable, torch's default generator
    too (``torch.manual_seed(seed)``), since that is where fastinit then draws its keys.
    """
    _global_generator.manual_seed(seed)
    torch = _torch()
    if torch is not None:
        torch.manual_seed(seed)


GeneratorLike = Union[None, int, Generator, np.random.Generator, np.random.RandomState, Any]


_key_words = threading.local()  # per thread: a CPU int64 tensor of two words, reused


def _key_word_buffer(torch: Any) -> Any:
    """A CPU buffer for the two words of a key, made once per thread: an explicit CPU device
    (a `with torch.device(...)` context must not move it) and a normal tensor even when first
    made under inference mode."""
    buf = getattr(_key_words, "buf", None)
    if buf is None:
        with torch.inference_mode(False):
            buf = _key_words.buf = torch.empty(2, dtype=torch.int64, device="cpu")
        _key_words.address = buf.data_ptr()
    return buf


def _key_from_torch_generator(gen: Any) -> int:
    if gen.device.type == "cpu":
        torch = _torch()
        if torch._C._len_torch_dispatch_stack():  # the draw is ours: no dispatch mode sees it
            from torch.utils._python_dispatch import _disable_current_modes
            with _disable_current_modes():
                words = _key_word_buffer(torch).random_(0, 1 << 32, generator=gen).tolist()
        else:
            words = _key_word_buffer(torch).random_(0, 1 << 32, generator=gen).tolist()
        return (words[0] | (words[1] << 32)) & _MASK64
    # Philox-based device generators: consume 4 offsets of their stream, host side only.
    torch = _torch()
    if gen.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            "fastinit: a torch CUDA generator cannot give a key inside CUDA graph capture (torch "
            "refuses get_offset/set_offset there, and a key drawn at capture would be replayed "
            "unchanged); pass an int or a fastinit.Generator: its key is then fixed in the graph")
    seed, offset = gen.initial_seed(), gen.get_offset()
    gen.set_offset(offset + 4)
    return splitmix64((splitmix64(seed) ^ offset) + _GOLDEN)


def key_for_core(generator: GeneratorLike = None) -> tuple[int, int]:
    """``(key, 0)``, or, for torch's CPU generators, ``(0, address)``: the key's two words drawn
    into the per-thread buffer at that address, where the compiled core reads them (the same
    key as next_key, without bringing the words back to Python)."""
    try:
        buf, address = _key_words.pair
    except AttributeError:  # this thread's first call, or no torch
        torch = _torch()
        if torch is None:
            return next_key(generator), 0
        buf = _key_word_buffer(torch)
        buf, address = _key_words.pair = (buf, _key_words.address)
    if generator is None:
        buf.random_(0, 1 << 32)  # torch's default generator, as generator=None means
        return 0, address
    torch = _torch()
    if type(generator) is torch.Generator and generator.device.type == "cpu":
        buf.random_(0, 1 << 32, generator=generator)
        return 0, address
    return next_key(generator), 0


def next_key(generator: GeneratorLike = None) -> int:
    """Draw one 64-bit key from `generator` (see the module docstring)."""
    if generator is None:
        torch = _torch()
        if torch is not None:
            return _key_from_torch_generator(torch.default_generator)
        return _global_generator.next_key()
    if isinstance(generator, Generator):
        return generator.next_key()
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return Generator(int(generator)).next_key()
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, 1 << 64, dtype=np.uint64, endpoint=False))
    if isinstance(generator, np.random.RandomState):
        words = generator.randint(0, 1 << 32, size=2, dtype=np.uint64)
        return int(words[0]) | (int(words[1]) << 32)
    torch = _torch()
    if torch is not None and isinstance(generator, torch.Generator):
        return _key_from_torch_generator(generator)
    raise TypeError(
        "generator must be None, an int seed, a fastinit.Generator, a numpy.random.Generator "
        f"or a torch.Generator, got {type(generator).__name__}")


def is_generator_like(obj: Any) -> bool:
    try:
        if obj is None or isinstance(obj, (Generator, np.random.Generator, np.random.RandomState)):
            return True
        if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
            return True
        torch = _torch()
        return torch is not None and isinstance(obj, torch.Generator)
    except Exception:  # pragma: no cover - defensive
        return False


