"""Benchmarks: each module measures one thing against its named baseline in the same run.

Every ``bench/<name>.py`` has ``main(argv) -> int`` and runs on its own
(``.venv/bin/python bench/<name>.py --help``); ``python -m bench`` (``make bench``) runs them all.
"""
