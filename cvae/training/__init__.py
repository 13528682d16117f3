"""Training: the Horovod loop, its input pipeline, callbacks, checkpoints, privacy, elastic runs, the export."""
