"""Evaluation tools: the speed benchmark (`relight_core.eval.bench`)."""
