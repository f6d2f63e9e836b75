"""The operations the CLI and the web call: open and check one issue (``loader``), init,
validate and rotate the key (``projects``), plan, send, preview, run what is due, record a
send, report (``reporting``), unsubscribe by command, link or mail (``unsubscribing``), sign
up and confirm (``signup``), export and forget (``personal_data``), who reads each list and
its changes (``roster``, ``roster_edit``, ``roster_import``). Every mail the product
sends leaves through ``outbound`` (credentials, transports, AUTH/TLS rules).

``loader`` (what validate, preview and send share) is here rather than in ``project``: it
renders and checks the disclaimer, so it needs ``compose``, which itself reads ``project``.
Services may use every stage (project, compose, delivery, store, util). They never print and
must not import the web, the commands or the CLI (nor ``click`` or ``rich``).
"""
