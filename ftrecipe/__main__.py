"""`python -m ftrecipe` runs the command line."""

from ftrecipe.cli import main

raise SystemExit(main())
