"""``python -m monty_runtime``: see :mod:`monty_runtime.cli`."""

from monty_runtime.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
