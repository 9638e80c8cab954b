"""From a tensor to written memory: what a target is, the one fill path, and the backends.

- :mod:`.backend`: which implementation runs the kernels (the compiled core or NumPy);
- :mod:`.target`: what an init function writes into (a torch tensor, a NumPy array, a DTensor's
  local shard), checked and described before anything is drawn or written;
- :mod:`.sharding`: DTensor shards and their place in the whole tensor;
- :mod:`.fill`: one fill (draw a key, run a backend); :mod:`.batch`: many fills in one core call.

Imports: the stream package (fastinit.stream) and the compiled core; never the layers above
(init, initializers, model, stats, watch).
"""
