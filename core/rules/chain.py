"""The audit chain: each audit row carries ``prev_hash`` and ``hash = sha256(prev_hash ‖ canonical
JSON of the row)``, one chain per pipeline (``pipeline:<id>``), one per governed pipeline
(``gov:<id>``) and one for everything else (``global``: tokens, settings). The head of every chain
(its last hash and length) is kept apart, so a deleted last row is caught too.

What it proves: no row of a chain was edited, deleted, inserted or reordered after it was written,
unless the whole chain from that row on, and its head, were rewritten too — which someone with
write access to the database can do. A head published elsewhere (an export, signed with the
team's key) is what catches that. docs/audit.md is the user-facing version.

Pure functions only: the unit of work links rows as it writes them; `verify_rows` checks any
stream of rows (from the database or from an export) in constant memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

GLOBAL = "global"
FIELDS = ("chain", "at", "actor", "principal", "on_behalf_of", "surface", "entity", "entity_id", "pipeline_id",
          "action", "from_state", "to_state", "reason", "run_url", "data")


def chain_of(entity: str, entity_id: str, pipeline_id: str | None, data: dict | None) -> str:
    """Which chain a row belongs to (the caller holds that chain's lock)."""
    if pipeline_id:
        return f"pipeline:{pipeline_id}"
    if entity == "gov-pipeline":
        return f"gov:{entity_id}"
    if entity == "gov-run" and data and data.get("pipeline"):
        return f"gov:{data['pipeline']}"
    return GLOBAL


def _moment(value) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


_SORTED = tuple(sorted(FIELDS))
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical(row: dict) -> str:
    """The row's content as one canonical JSON text (sorted keys, no spaces, times in UTC µs)."""
    body = {k: row.get(k) for k in _SORTED}  # inserted in sorted order: the same text as sort_keys
    body["at"] = _moment(body["at"])
    return _ENCODE(body)


def link(prev_hash: str | None, row: dict) -> str:
    return hashlib.sha256(((prev_hash or "") + "\n" + canonical(row)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first broken link: the row (its seq), what its hash should be, what was found."""

    chain: str
    seq: int | None
    problem: str
    expected: str | None
    found: str | None

    def line(self) -> str:
        where = f"row {self.seq}" if self.seq is not None else "its head"
        return (f"audit chain {self.chain} is broken at {where}: {self.problem} "
                f"(expected {_short(self.expected)}, found {_short(self.found)})")

    def as_dict(self) -> dict:
        return {"chain": self.chain, "seq": self.seq, "problem": self.problem, "expected": self.expected,
                "found": self.found}


def _short(value: str | None) -> str:
    return value[:16] + "…" if value else "nothing"


@dataclass
class Report:
    chains: int = 0
    rows: int = 0
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "chains": self.chains, "rows": self.rows,
                "broken": self.broken.as_dict() if self.broken else None}


def verify_rows(rows: Iterable[dict], heads: dict[str, tuple[str, int]],
                start: dict[str, tuple[str | None, int]] | None = None) -> Report:
    """Check rows ordered by (chain, seq) against their links and the chains' heads.

    Each row has the FIELDS plus ``seq``, ``prev_hash`` and ``hash``; ``heads`` maps a chain to its
    recorded (head hash, length). ``start`` maps a chain whose rows begin part-way to the (hash,
    length) they continue from, taken as given: only the rows passed are verified. Stops at the
    first broken link.
    """
    report = Report()
    seen: set[str] = set()
    for chain, prev, length, brk in _walk(rows, report, start or {}):
        if brk is not None:
            report.broken = brk
            return report
        seen.add(chain)
        report.broken = _check_head(chain, prev, length, heads.get(chain))
        if report.broken:
            return report
    for chain in sorted(set(heads) - seen):
        head, length = heads[chain]
        if length:
            report.broken = Break(chain, None, f"all {length} rows are missing", head, None)
            return report
    report.chains = len(seen)
    return report


def _walk(rows: Iterable[dict], report: Report,
          start: dict[str, tuple[str | None, int]]) -> Iterator[tuple[str, str | None, int, Break | None]]:
    chain, prev, length = None, None, 0
    for row in rows:
        if row["chain"] != chain:
            if chain is not None:
                yield chain, prev, length, None
            chain = row["chain"]
            prev, length = start.get(chain, (None, 0))
        report.rows += 1
        if (row.get("prev_hash") or None) != prev:
            problem = "a row before it was deleted, inserted or reordered"
            yield chain, prev, length, Break(chain, row.get("seq"), problem, prev, row.get("prev_hash"))
            return
        expected = link(prev, row)
        if row.get("hash") != expected:
            yield chain, prev, length, Break(chain, row.get("seq"), "the row was edited", expected, row.get("hash"))
            return
        prev, length = expected, length + 1
    if chain is not None:
        yield chain, prev, length, None


def _check_head(chain: str, last: str | None, length: int, head: tuple[str, int] | None) -> Break | None:
    if head is None:
        return Break(chain, None, "the chain has no recorded head", None, last)
    if head[0] != last or head[1] != length:
        return Break(chain, None, f"its head says {head[1]} rows ending {_short(head[0])}, the rows say {length}",
                     head[0], last)
    return None
