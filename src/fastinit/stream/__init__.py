"""The random stream (format v2, docs/stream-format.md): everything that defines a value.

- :mod:`.keys`: where a call's 64-bit key comes from (``fastinit.Generator``, torch and NumPy
  generators, int seeds);
- :mod:`.ops`: the per-call constants of each stream operation (uniform, normal, truncated
  normal, constant), computed once on the host;
- :mod:`.dtypes`: the float formats, their codes in the compiled core and their value grids;
- :mod:`.logical`: which stream elements a tensor (or a shard of one) holds;
- :mod:`.numpy_stream`, :mod:`.coefficients`: the NumPy implementation of the stream, the
  fallback backend and the reference of the compiled core.

Imports: NumPy only; nothing else of fastinit. Everything else builds on this package.
"""
