"""Who is acting. Kept apart from the unit of work so catalogue paths import no database code.

Every change records two names:

    name          the person credited (``alice``, or a surface identity such as ``slack:U123``
                  that the config maps to a person, or a service such as ``token:ci``)
    principal     who proved it: ``slack:U123`` (signature verified), ``token:<name>`` (an API
                  token), ``github-app:<installation>``, ``os:<user>`` (a local process that holds
                  the database credentials: an administrator)

``on_behalf_of`` is a claim nobody proved (a CI run naming ``github:octocat``): recorded, never
credited with a gate decision. ``service`` marks a service principal (CI, bots): it may decide a
gate only where the gate's policy names it in ``service_approvers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN_PREFIX = "os:"


def os_user() -> str:
    import getpass  # here: most commands are told who acts (--as, PIPE_ACTOR)

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def local_principal() -> str:
    """The principal of a process on this machine that opens the database itself."""
    return ADMIN_PREFIX + os_user()


@dataclass(frozen=True)
class Actor:
    """Who asked, from which surface (cli / slack / github / api), proven by which principal."""

    name: str
    surface: str = "cli"
    run_url: str | None = None
    principal: str = field(default_factory=local_principal)
    on_behalf_of: str | None = None
    service: bool = False

    @property
    def administrator(self) -> bool:
        """A direct-database process: trusted with everything, and recorded as such."""
        return self.principal.startswith(ADMIN_PREFIX)

    @property
    def service_name(self) -> str | None:
        """The service's own name (``token:scanner`` → ``scanner``) when the principal is a service."""
        if not self.service:
            return None
        return self.principal.split(":", 1)[1] if ":" in self.principal else self.principal


def local_actor(name: str, *, allow_as: bool) -> Actor:
    """The actor of a direct-database command: the named person, proven only as the OS user.

    Naming someone other than yourself is what an administrator may do, and is recorded as such
    (principal ``os:<you>``); a team that wants it impossible sets ``[cli] allow_as = false``.
    """
    from chainpipe.core.errors import NotAllowed

    me = os_user()
    if name != me and not allow_as:
        raise NotAllowed(f"acting as {name} is switched off here ([cli] allow_as = false); "
                         f"commands are recorded as {me}")
    return Actor(name, "cli", principal=ADMIN_PREFIX + me)
