"""`python -m dtif`."""

from dtif.cli import main

raise SystemExit(main())
