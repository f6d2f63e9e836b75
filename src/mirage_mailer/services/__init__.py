"""The operations the CLI and the web call: open and check one issue (``loader``), plan, send,
preview, run what is due, record a send, report, and process mailed unsubscribes. Every mail
the product sends leaves through ``outbound`` (credentials, transports, AUTH/TLS rules).

``loader`` (what validate, preview and send share) is here rather than in ``project``: it
renders and checks the disclaimer, so it needs ``compose``, which itself reads ``project``.
Services may use every stage (project, compose, delivery, store, util). They never print and
must not import the web, the commands or the CLI (nor ``click`` or ``rich``).
"""
