"""Who is acting. Kept apart from the unit of work so catalogue paths import no database code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who asked, and from which surface (cli / slack / github / api); ``run_url`` links a CI run."""

    name: str
    surface: str = "cli"
    run_url: str | None = None
