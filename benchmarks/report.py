"""The benchmark tables and chapter-6 figures live in the package (``ssmbook.benchmarks``), next to
the committed results (``ssmbook/data/benchmarks/*.json``); this module re-exports them for the
scripts in this folder and NOTES.md."""
from ssmbook.benchmarks import *  # noqa: F401,F403
