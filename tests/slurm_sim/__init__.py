"""A simulated SLURM cluster for tests: cluster.py (the commands), bin/ (their wrappers), fixture.py."""
