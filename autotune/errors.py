"""The one error type a user sees: a problem with what they asked for, and its fix."""


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2.

    The message names the problem and how to fix it, e.g.
    ``unknown GPU 't5'; did you mean: t4, a10? (autotune gpus lists them all)``.
    """

    exit_code = 2


class DoesNotFit(UserError):
    """The model fits at no batch, resolution and precision: exit code 3."""

    exit_code = 3
