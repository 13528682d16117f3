"""The network and what shapes it: encoder and decoder, the condition vector, the optimizer, the warm-up schedules."""
