"""``python -m monty_runtime.conformance``: see :mod:`monty_runtime.conformance.cli`."""

from monty_runtime.conformance import main

if __name__ == "__main__":
    raise SystemExit(main())
