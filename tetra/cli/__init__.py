"""The ``tetra`` command line: click commands, rich rendering."""
