"""The ``tuwen`` command line (Typer): :mod:`tuwen.cli.main` builds the app and registers each command module's
commands explicitly (``tuwen.cli.main:app`` is the console script); importing this package does nothing else."""
