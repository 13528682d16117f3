"""Command line, configuration and launch helpers for ppg-cvae."""
