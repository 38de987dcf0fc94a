"""GitHub, for both the server and the Action: the one place PyGithub is imported.

    mirror.py   deploy audit events → GitHub Deployments and their statuses (idempotent)
    outbox.py   the `github` outbox consumer that drives the mirror
    app.py      the GitHub App: its JWT, installation tokens (cached), protection-rule answers

`bot` and `cli` never import each other (tests/unit/test_layers.py), so what both need from GitHub
lives here; `core` imports none of it. The Action's remote mode imports none of it either: it needs
only the standard library.
"""
