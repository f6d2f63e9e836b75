"""The subscriber-facing side: one-click unsubscribe, double opt-in, archive, feed, report."""
