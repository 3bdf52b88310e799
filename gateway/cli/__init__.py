"""The ``gateway`` command: one module per verb family, ``main(argv)`` testable in-process."""

from gateway.cli.main import main

__all__ = ["main"]
