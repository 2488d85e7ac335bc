"""`python -m mvcapture` is the same as the `mvcapture` command."""

from mvcapture.cli import main

raise SystemExit(main())
