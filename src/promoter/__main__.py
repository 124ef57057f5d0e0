"""``python -m promoter`` runs the same CLI as the ``promoter`` console script."""

from promoter.cli.main import run

run()
