"""The ``skiff`` console script: ``skiff --help`` from the command cache, else :func:`skiff.cli.main`.

Kept to a few stdlib imports so that ``--help`` with a valid command cache imports
neither click nor pluggy (:mod:`skiff.quickhelp`); every other start is
:func:`skiff.cli.main`'s, unchanged.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Console entry point of ``skiff``."""
    args = sys.argv[1:]
    if args and args[0].startswith("-"):
        from . import quickhelp

        text = quickhelp.page(args)
        if text is not None:
            from . import timeline

            os.umask(0o022)
            timeline.mark(f"{args[0]}.main")
            try:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # as skiff.cli.run_guarded answers it
                sys.exit(1)
            sys.exit(0)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":  # pragma: no cover
    main()
