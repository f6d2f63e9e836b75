"""The click layer, one module per command group (as pipx does): each parses arguments, calls
services and prints, and exposes its click commands as ``COMMANDS`` for ``cli.py`` to register.

The top of the import graph below ``cli``: may import ``services``, ``project``, ``util`` and
``web``; must not import ``store``, ``delivery`` or ``compose`` (the operations on them are
services, which the web calls too), nor ``cli``; nothing below imports it.
"""
