"""The SOAP wire: ``app`` (the WSGI app), ``envelope`` (SOAP 1.1 rules, faults), ``handlers`` (the
contracts), ``identity`` (who is calling), ``tls`` (TLS contexts) and ``client`` (the zeep client).

Modules are imported by path: importing this package loads nothing, so a command that needs only TLS
contexts or the caller's identity does not load the whole request path. Nothing here imports
``gateway.web`` or ``gateway.cli``; the case records and the inbox live in ``gateway.cases``.
"""

__all__: list[str] = []
