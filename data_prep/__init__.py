"""Data preparation: readers, cohort simulator, validation, normalization, split, TFRecord shards, manifest."""
