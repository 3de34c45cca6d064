"""`make bench`: Classgate under load on this machine, against two minimal baselines, plus batch timings.

Run it as `python -m bench.run` from the repository root (see bench/README.md).
"""
