"""Composing: render each issue language once (sandboxed Jinja2, the EU disclaimer rules, the
accessibility checks, the fixed strings), then the cheap per-recipient message bytes (slots,
headers, signed links).

Reads the project (``project``) and leaf helpers (``util``). Must not import the store,
delivery, services, the web or the CLI: composing a message never touches tracking state.
"""
