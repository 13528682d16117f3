"""Fidelity evaluation of synthetic PPG against held-out real signals."""
