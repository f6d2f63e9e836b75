"""CLI commands that need more than a few lines, one module per command (as pipx does)."""
