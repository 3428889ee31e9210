"""`python -m driftstack.tools.cli` is `driftstack`."""

from driftstack.tools.cli import main

main()
