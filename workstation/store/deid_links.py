"""The re-identification table: which pseudonym (patient, study UID) stands for which original, kept in the
encrypted store when the site chooses it (`[deid] keep_reidentification = true`), readable by admins only."""

from __future__ import annotations

from dataclasses import dataclass

from workstation.core.roles import Role
from workstation.store.database import Store, now_utc


class NotAdmin(PermissionError):
    """Only an admin may read the re-identification table."""


@dataclass(frozen=True)
class Link:
    kind: str  # "patient" | "study"
    pseudonym: str
    original: str
    export_id: str
    at_utc: str


class DeidLinks:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, export_id: str, links: list[tuple[str, str, str]]) -> None:
        """(kind, pseudonym, original) rows of one export; a link already kept stays as first kept."""
        at = now_utc()
        with self.store._transaction() as db:  # noqa: SLF001 - one store, several modules
            db.executemany("INSERT OR IGNORE INTO deid_links (kind, pseudonym, original, export_id, at_utc) "
                           "VALUES (?, ?, ?, ?, ?)", [(k, p, o, export_id, at) for k, p, o in links])

    def lookup(self, pseudonym: str) -> list[Link]:
        """The originals behind a pseudonym (a patient pseudonym or a de-identified Study Instance UID)."""
        if self.store.identity.user.role is not Role.ADMIN:
            raise NotAdmin(f"{self.store.identity.user.login} may not read the re-identification table (admins only)")
        rows = self.store._query("SELECT kind, pseudonym, original, export_id, at_utc FROM deid_links "  # noqa: SLF001
                                 "WHERE pseudonym = ? ORDER BY at_utc", (pseudonym,))
        return [Link(*row) for row in rows]
