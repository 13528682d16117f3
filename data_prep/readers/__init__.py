"""Readers: each turns one kind of source (arrays, pickles, recordings, PulseDB, VitalDB, MIMIC-III) into signals."""
