"""The web view: read-only pages served by ``pipe-server`` under ``/web`` (docs/web.md).

Server-rendered with Jinja2 (autoescaped: every value shown is text), SVG charts drawn in Python
(``bot.web.svg``), one small script that refreshes the board. A person signs in with a personal
API token (``bot.web.session``); every page is refused without a valid session.
"""

from __future__ import annotations


def mount(runtime, env=None):
    """The ``/web`` mount for the server (imported on use: Slack's builders need only ``links``)."""
    from chainpipe.bot.web.routes import mount as web_mount

    return web_mount(runtime, env)
