"""`python -m mibench` runs the command line."""

from mibench.cli import main

main()
