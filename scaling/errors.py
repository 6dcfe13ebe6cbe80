"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user (config, CLI argument, data file, results table, run directory).

    The message must say what is wrong and how to fix it; the CLI prints it as `error: <message>`.
    """

    exit_code = 2


class RunInUse(UserError):
    """Another process holds the run directory's lock; a launcher should wait, not record a failure."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class RunFailed(UserError):
    """The run stopped on a failure after it began training (a checkpoint or metrics write); its
    summary.json says `failed`, and rerunning resumes from the last good checkpoint."""

    exit_code = 1
