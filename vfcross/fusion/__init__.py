"""Stage 3: attention-gated fusion with the orthogonal projection loss, on the backbone's embeddings."""
