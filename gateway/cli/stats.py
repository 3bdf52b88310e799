"""``gateway stats``: counts of cases at a level by one parameter, with totals and handling time.

Read-only: it never migrates (a schema that is not current is refused, exit 4). Small cells are always
suppressed (shown "<5" for the default ``--threshold 5``; at least 3). Mistakes are one line: a bad
option value exits 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date
from typing import Any

from gateway.cli.common import config_of, open_engine
from gateway.errors import ConfigError
from gateway.stats.dimensions import LEVELS, PARAMETERS, PERIODS
from gateway.stats.query import StatsQuery, count
from gateway.stats.report import Report, report

__all__ = ["add_stats_parser"]

FORMATS = ("table", "csv", "json")
MIN_THRESHOLD = 3


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-11-30: {value!r}") from None


def _table(result: Report) -> str:
    lines = [result.header, *result.lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(result.header))]
    left = 2 if result.header[1:2] == ["name"] else 1  # the row key (and name) align left, numbers right
    out = []
    for line in lines:
        cells = [
            value.ljust(width) if i < left else value.rjust(width)
            for i, (value, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _query(args: argparse.Namespace) -> StatsQuery:
    if args.threshold < MIN_THRESHOLD:
        raise ConfigError(
            f"gateway stats: --threshold must be at least {MIN_THRESHOLD}, got {args.threshold}"
        )
    try:
        return StatsQuery(args.level, args.by, args.period, args.start, args.end, args.scope)
    except ValueError as exc:
        raise ConfigError(f"gateway stats: {exc}") from None


def cmd_stats(args: argparse.Namespace) -> int:
    query = _query(args)
    engine = open_engine(config_of(args))
    try:
        result = report(count(engine, query), args.threshold)
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(result.data, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.header)
        writer.writerows(result.lines)
    else:
        print(_table(result))
    return 0


def add_stats_parser(sub: Any) -> None:
    p = sub.add_parser(
        "stats",
        help="statistics: cases at a level by one parameter (suppressed small cells, handling time)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--level", required=True, choices=LEVELS, help="the rows: units, care providers, …")
    p.add_argument("--by", required=True, choices=PARAMETERS, help="the columns: one of the ten parameters")
    p.add_argument("--period", choices=PERIODS, default="month", help="dates by day, week or month")
    p.add_argument(
        "--from", dest="start", type=_day, metavar="DATE", help="received on or after this date (UTC)"
    )
    p.add_argument(
        "--to", dest="end", type=_day, metavar="DATE", help="received on or before this date (UTC)"
    )
    p.add_argument("--scope", metavar="HSA", help="only cases of this unit, care provider or region")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.add_argument(
        "--threshold",
        type=int,
        default=5,
        help=f"suppress counts below this (default 5, at least {MIN_THRESHOLD})",
    )
    p.set_defaults(func=cmd_stats)
