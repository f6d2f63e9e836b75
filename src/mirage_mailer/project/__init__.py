"""The project as written: mirage.yaml, YAML with line numbers, issues and articles, lists, the
scaffold that ``init`` writes. It reads and checks what the officer wrote (``path:line`` problems)
and renders nothing.

``eu_names`` (the Union's name in the official languages) sits here: the config check of
``disclaimer.statement`` needs it, and ``compose`` reads the same table from here. Opening an
issue end to end (which renders) is ``services.loader``. Must not import anything of ours but
``util``.
"""
