"""Service contracts: the registry read from ``wsdl/``, schema validation, typed mappings and code lists.

This package is the bottom of the dependency graph: it imports nothing from ``gateway``, ``routing`` or
``outbox``. It also owns the single SQLAlchemy ``MetaData`` every package registers its tables on.
"""

from contracts.codelists import CodeLists, load_code_lists
from contracts.registry import Contract, ContractRegistry, load_registry
from contracts.validation import SchemaValidator

__all__ = [
    "CodeLists",
    "Contract",
    "ContractRegistry",
    "SchemaValidator",
    "load_code_lists",
    "load_registry",
]
