"""Experiment tracking: a run's metric rows and summary, and a sweep's validation, sent to TensorBoard event
files and Weights & Biases as well as to the run directory. Off by default; the writers are imported only
when asked for, so the lab works without them. Imports the base modules only."""
