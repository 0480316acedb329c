"""``python -m tuwen.cli``: the same app as the ``tuwen`` command."""

from tuwen.cli.main import app

app()
