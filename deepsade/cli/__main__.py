"""``python -m deepsade.cli``."""

from deepsade.cli import main

main()
