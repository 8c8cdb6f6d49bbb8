"""``python -m monty_dev``: see :mod:`monty_dev.cli`."""

from monty_dev.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
