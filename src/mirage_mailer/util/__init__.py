"""Leaf helpers every layer may use: problems, errors and exit codes, addresses, language codes,
locks and state-dir files, signed tokens, password hashes, header values checked and built.

``headersafe`` is here rather than in ``compose``: the project's checks (config, subjects, list
rows) use it as much as the message builder does. Must not import any other package of
mirage_mailer.
"""
