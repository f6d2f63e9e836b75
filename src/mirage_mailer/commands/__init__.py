"""CLI commands that need more than a few lines, one module per command (as pipx does).

The top of the import graph: may use every layer; must not import ``cli``, and nothing below
imports it.
"""
