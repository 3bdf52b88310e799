"""Keeps the active routing table of one process current, and a local copy for when the database is down.

A daemon thread polls the newest version number (one indexed lookup) every ``poll_interval`` seconds and,
when it changes, loads that version and swaps the whole table in one reference assignment, so a request sees
either the old routes and permissions or the new ones, never a mix. Each loaded version is also written
atomically to ``snapshot_file``; at start, if the database cannot be reached, that file is served instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from sqlalchemy import Engine

from routing.model import Catalogue
from routing.resolver import RoutingTable
from routing.store import CatalogueStore

__all__ = ["RoutingHolder"]

log = logging.getLogger("routing.holder")


def _private_directory(directory: Path) -> None:
    missing = []  # each created 0700 (mkdir -p would give the parents the umask's mode)
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _owner_only(path: Path) -> None:
    """Tighten a snapshot file left readable by others (an older version wrote it 0644)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning(
                "%s was readable by others (mode %04o); now by its owner only (0600)",
                path,
                mode,
                extra={"fields": {"file": str(path)}},
            )
    except OSError as exc:  # e.g. owned by another user
        log.warning(
            "could not make %s private: %s", path, exc.strerror, extra={"fields": {"file": str(path)}}
        )


class RoutingHolder:
    def __init__(self, engine: Engine, snapshot_file: Path | None, poll_interval: float = 0.5) -> None:
        self.store = CatalogueStore(engine)
        self.snapshot_file = snapshot_file
        self.poll_interval = poll_interval
        self.table = RoutingTable(Catalogue(), version=0, content_hash="")
        self.source = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Load the active version from the database, falling back to the local snapshot file."""
        if self.snapshot_file is not None and self.snapshot_file.is_file():
            _owner_only(self.snapshot_file)
        try:
            self.refresh()
        except Exception:  # any database failure: serve the last good snapshot
            log.warning(
                "routing catalogue unreachable in the database; trying the local snapshot", exc_info=True
            )
            self._load_file()

    def refresh(self) -> bool:
        """Swap in the newest version if it differs from the one held; True when it did."""
        current = self.store.active_version()
        if current is None or current[0] == self.table.version:
            return False
        catalogue, digest = self.store.version_content(current[0])
        self.table = RoutingTable(catalogue, version=current[0], content_hash=digest)
        self.source = "database"
        self._write_file(catalogue, current[0], digest)
        log.info("routing version loaded", extra={"fields": {"version": current[0], "hash": digest[:12]}})
        return True

    def _write_file(self, catalogue: Catalogue, version: int, digest: str) -> None:
        if self.snapshot_file is None:
            return
        data = json.dumps(
            {"version": version, "hash": digest, "catalogue": catalogue.to_dict()}, sort_keys=True
        )
        try:
            # the catalogue names who may call what: readable by the gateway's user alone, whatever the umask
            _private_directory(self.snapshot_file.parent)
            fd, tmp = tempfile.mkstemp(dir=self.snapshot_file.parent, prefix=".routing-", suffix=".tmp")
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.snapshot_file)
        except OSError:
            log.warning("could not write the local routing snapshot", exc_info=True)

    def _load_file(self) -> None:
        if self.snapshot_file is None or not self.snapshot_file.is_file():
            log.error("no routing snapshot available: every call will be refused with VP004")
            return
        data = json.loads(self.snapshot_file.read_text())
        catalogue = Catalogue.from_dict(data["catalogue"])
        self.table = RoutingTable(catalogue, version=int(data["version"]), content_hash=str(data["hash"]))
        self.source = "snapshot-file"
        log.warning(
            "serving routing version from the local snapshot", extra={"fields": {"version": data["version"]}}
        )

    def start(self) -> None:
        self.load()
        self._thread = threading.Thread(target=self._run, name="routing-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # keep serving the last good table
                # "repeat": written once with its cause, then counted (gateway.logs.RepeatFilter)
                failing = True
                log.warning(
                    "routing poll failed; keeping version %s",
                    self.table.version,
                    exc_info=True,
                    extra={"repeat": "routing-poll"},
                )
            else:
                if failing:
                    failing = False
                    log.info("routing poll recovered", extra={"recovered": "routing-poll"})

    def stop(self) -> None:
        self._stop.set()
