"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user (config, CLI argument, data file, results table, run directory).

    The message must say what is wrong and how to fix it; the CLI prints it as `error: <message>`.
    """
