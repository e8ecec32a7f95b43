"""``python -m tabard`` is the ``tabard`` command."""

from tabard.cli.main import main

main()
