"""The subscriber-facing side: one-click unsubscribe, double opt-in, archive, feed, report.

Routes call services for what the command line does too (unsubscribe, sign-up and
confirmation, report figures, every outgoing mail); they also use project, compose, store and
util. Must not import the commands or the CLI, nor delivery (mail goes out through
``services.outbound``). State lives in one place, ``context.WebContext``; pages are answered
through ``respond``.
"""
