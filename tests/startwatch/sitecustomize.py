"""Loaded by every Python process the tests start (this folder is on their ``PYTHONPATH``): the suite's watcher
of starts, ``startwatch.py`` beside this file. A test that gives its processes a ``sitecustomize`` of its own
imports ``startwatch`` from it to keep the watch (tests/bench/test_gpu_packing.py does)."""

import startwatch  # noqa: F401  (installs itself)
