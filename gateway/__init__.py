"""The RIV-TA SOAP gateway for 1177 complaints and feedback: SOAP core, server, handlers and CLI."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("caf-gateway")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
