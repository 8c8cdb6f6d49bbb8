"""``python -m monty_dev.conformance``: see :mod:`monty_dev.conformance.cli`."""

from monty_dev.conformance import main

if __name__ == "__main__":
    raise SystemExit(main())
