"""The subscriber-facing side: one-click unsubscribe, double opt-in, archive, feed, report.

Routes use services, project, compose, store and util. Must not import the commands or the CLI,
nor delivery (one named exception in ``tests/test_architecture.py``: the confirmation mail).
"""
