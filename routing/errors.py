"""Routing errors. ``gateway`` translates them to platform codes at its boundary.

RoutingError            root
├── CatalogueError      an invalid catalogue or operator input (one-line message)
└── DecisionError       a call cannot be routed or is not allowed; carries the trace of what was tried
    ├── NoRouteFound        (VP004)
    ├── AmbiguousRoute      (VP006)
    └── AccessDenied        (VP007)
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AmbiguousRoute",
    "CatalogueError",
    "DecisionError",
    "NoRouteFound",
    "RoutingError",
]


class RoutingError(Exception):
    exit_code = 1


class CatalogueError(RoutingError):
    exit_code = 2


class DecisionError(RoutingError):
    def __init__(self, message: str, trace: tuple[str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.trace = trace


class NoRouteFound(DecisionError):
    pass


class AmbiguousRoute(DecisionError):
    pass


class AccessDenied(DecisionError):
    pass
