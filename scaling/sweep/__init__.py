"""Sweeps: a sweep file expands into frozen run configs with deterministic names (`plan`), launchers run
them idempotently (`launch` locally, `slurm` through submitit), and `collect` writes the results table."""
