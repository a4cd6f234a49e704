"""Stage 2: the single-stream network (and its dual-stream baseline), its sampler, training task and embeddings."""
