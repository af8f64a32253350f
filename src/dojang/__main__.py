"""``python -m dojang``: the same as the ``dojang`` command."""

from dojang.cli.main import main

main()
