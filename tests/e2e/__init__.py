"""End-to-end tests: the CLI, real multi-rank Horovod jobs, Slurm, TensorBoard, real recordings."""
