"""The people's web app on its own mutual-TLS port: the case desk's pages and its JSON API (+ OpenAPI).

Flask + Jinja2 (autoescape on), every script and style a static file of this package, no external URL.
Sits on top: uses ``gateway.desk`` (all case data), ``gateway.soap.identity`` (who is asking) and
``gateway.config``; nothing below imports it.
"""

from gateway.web.app import create_web_app
from gateway.web.listener import web_listener_app

__all__ = ["create_web_app", "web_listener_app"]
