"""Replication state as the bridge sees it: the contextCSN of each provider in LDAP_URL.

OpenLDAP's syncprov keeps, on the suffix entry, one ``contextCSN`` per server id: the
change sequence number of the newest change from that server the database holds. Two
providers are in sync when they hold the same values; a provider lags when another holds
a newer CSN for some server id. The lag is the difference of the two CSNs' times, i.e.
how much older the newest change it holds from that server is (not a network delay).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ldap3 import BASE, Connection

from config import Settings
from directory.connection import close_quietly, open_indexed
from directory.errors import CONNECTION_ERRORS, DirectoryError, DirectoryUnavailable

CSN_TIME = "%Y%m%d%H%M%S.%fZ"


def csn_time(csn: str) -> datetime | None:
    try:
        return datetime.strptime(csn.split("#", 1)[0], CSN_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def by_server(csns: list[str]) -> dict[str, str]:
    """contextCSN values keyed by server id (the third ``#`` field)."""
    return {csn.split("#")[2]: csn for csn in csns if csn.count("#") == 3}


def context_csns(conn: Connection, base_dn: str) -> list[str] | None:
    """The contextCSN values of ``base_dn`` (None when it has none or cannot be read)."""
    try:
        if not conn.search(base_dn, "(objectClass=*)", BASE, attributes=["contextCSN"]):
            return None
    except CONNECTION_ERRORS as exc:
        raise DirectoryUnavailable(f"directory unreachable: {type(exc).__name__}") from exc
    except Exception:  # noqa: BLE001 - an unreadable suffix: the lag is unknown
        return None
    values = conn.entries[0].entry_attributes_as_dict.get("contextCSN") or []
    return [str(v) for v in values] or None


@dataclass
class Lag:
    seconds: float | None  # None: unknown (no other provider answered, or no contextCSN)

    @property
    def lagging(self) -> bool:
        return bool(self.seconds)


def lag_of(current: list[str] | None, others: list[list[str]]) -> Lag:
    """How far ``current`` is behind the newest CSN per server id among ``others``."""
    if current is None or not others:
        return Lag(None)
    own, worst = by_server(current), 0.0
    for values in others:
        for sid, csn in by_server(values).items():
            mine = own.get(sid, "")
            if csn > mine:
                newer, older = csn_time(csn), csn_time(mine) if mine else None
                if newer is None:
                    continue
                behind = (newer - older).total_seconds() if older else float("inf")
                worst = max(worst, behind)
    return Lag(worst)


def sample_lag(settings: Settings, current_conn: Connection, current: int) -> Lag:
    """The lag of provider ``current`` (already connected) behind the other URLs."""
    mine = context_csns(current_conn, settings.LDAP_BASE_DN)
    others: list[list[str]] = []
    for index, url in enumerate(settings.ldap_urls):
        if index == current:
            continue
        try:
            conn, _ = open_indexed(settings, [url])
        except DirectoryError:
            continue  # a provider that does not answer holds nothing newer we can see
        try:
            values = context_csns(conn, settings.LDAP_BASE_DN)
        except DirectoryUnavailable:
            continue  # it stopped answering meanwhile: as above
        finally:
            close_quietly(conn)
        if values is not None:
            others.append(values)
    return lag_of(mine, others)
