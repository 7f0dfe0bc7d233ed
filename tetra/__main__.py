"""``python -m tetra`` runs the CLI."""

from tetra.cli.main import main

main()
