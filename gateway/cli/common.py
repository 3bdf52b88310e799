"""What every command family shares: reading the configuration and printing text or JSON."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from gateway.config import Config, load_config

__all__ = ["DEFAULT_CONFIG", "config_of", "emit"]

DEFAULT_CONFIG = "gateway.toml"


def config_of(args: argparse.Namespace) -> Config:
    path = getattr(args, "config", None) or os.environ.get("GATEWAY_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return load_config(path)


def emit(args: argparse.Namespace, data: Any, line: str) -> None:
    """``data`` as JSON with ``--json``, else the human ``line``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(line)
