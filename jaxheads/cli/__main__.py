"""``python -m jaxheads.cli``: the ``jaxheads`` command."""

from jaxheads.cli.main import main

raise SystemExit(main())
