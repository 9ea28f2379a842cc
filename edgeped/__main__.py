"""`python -m edgeped` runs the command line."""

from edgeped.cli import main

main()
