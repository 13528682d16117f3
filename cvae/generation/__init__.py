"""Generation: the exported model loaded without Horovod, the latent prior, the equalizer, synthetic cohorts."""
