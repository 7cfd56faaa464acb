"""``python -m dendrolab`` runs the command line."""

from dendrolab.cli import main

main()
