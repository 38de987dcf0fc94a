"""The one error tree of chainpipe. Every surface translates it in exactly one place.

    PipeError                     exit 1 unless stated
    ├── NotFound                  an id that does not exist
    ├── InvalidTransition         "can't pause a pipeline that is completed; allowed from: running"
    ├── GateNotApproved           "gate not approved: code-review"
    ├── NotAllowed                a policy refused the actor (approvers, self-approval)
    ├── CapExceeded               a governance cap is full
    ├── Conflict                  the request clashes with what is stored (e.g. duplicate id)
    ├── InvalidInput   (exit 2)   a value the user typed is malformed or unknown
    └── ConfigError    (exit 2)   the configuration file or environment is wrong

Messages are one line, name ids and never secrets.
"""

from __future__ import annotations


class PipeError(Exception):
    exit_code = 1
    title = "error"
    http_status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        return {"error": self.title, "message": self.message}


class NotFound(PipeError):
    title = "not found"
    http_status = 404


class InvalidTransition(PipeError):
    title = "invalid transition"
    http_status = 409


class GateNotApproved(PipeError):
    title = "gate not approved"
    http_status = 409


class NotAllowed(PipeError):
    title = "not allowed"
    http_status = 403


class CapExceeded(PipeError):
    title = "cap exceeded"
    http_status = 409


class Conflict(PipeError):
    title = "conflict"
    http_status = 409


class InvalidInput(PipeError):
    exit_code = 2
    title = "invalid input"
    http_status = 422


class ConfigError(PipeError):
    exit_code = 2
    title = "configuration error"
    http_status = 500
