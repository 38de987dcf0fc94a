"""chainpipe core: the delivery-pipeline orchestrator shared by the CLI, the bot and the Action.

Importing this package is cheap on purpose: the catalogue, the grammar and the error tree import no
database code, so `pipe --help` and the catalogue commands start fast. Database modules are imported
by the code paths that need them.
"""

__version__ = "0.1.0"
