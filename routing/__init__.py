"""Routing catalogue (TAK-style): components, contracts, logical addresses, endpoints, routes, permissions
and an HSA tree; resolution with HSA climb; draft → diff → publish → rollback, with an audit log.

Uses ``contracts`` at most; ``gateway`` translates routing errors into platform codes.
"""

from routing.errors import AccessDenied, AmbiguousRoute, CatalogueError, NoRouteFound, RoutingError
from routing.holder import RoutingHolder
from routing.model import Catalogue
from routing.resolver import Decision, RoutingTable
from routing.store import CatalogueStore

__all__ = [
    "AccessDenied",
    "AmbiguousRoute",
    "Catalogue",
    "CatalogueError",
    "CatalogueStore",
    "Decision",
    "NoRouteFound",
    "RoutingError",
    "RoutingHolder",
    "RoutingTable",
]
