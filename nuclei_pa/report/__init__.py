"""Turning per-checkpoint evaluations into the paper's tables and figures."""
