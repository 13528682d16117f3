"""Conditional convolutional VAE: model, input pipeline, Horovod trainer, generation, evaluation."""
