"""The command line's error boundary, shared by ``streamnlp`` and its ``model`` group."""

from __future__ import annotations

import click

from ._errors import StreamNLPError

# sysexits.h EX_TEMPFAIL: the error says trying again later may work (a service was not up yet).
EXIT_RETRIABLE = 75


class _Failure(click.ClickException):
    def __init__(self, error: StreamNLPError) -> None:
        super().__init__(str(error))
        self.exit_code = EXIT_RETRIABLE if error.retriable else 1


class ErrorBoundary(click.Group):
    """Our own errors become one clear line on stderr and exit code 1 (75 when ``retriable``) instead
    of a traceback, whichever subcommand raised them. Other errors are bugs: they keep their traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StreamNLPError as exc:
            raise _Failure(exc) from exc
