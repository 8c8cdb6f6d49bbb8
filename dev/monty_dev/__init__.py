"""Development tools of monty-runtime, kept out of the runtime's wheel.

* :mod:`monty_dev.build` - the web build (``python -m monty_dev build``): the
  Pyodide-side wheel, the lock file and build info in ``web/dist/``;
* :mod:`monty_dev.conformance` - the conformance runner
  (``python -m monty_dev conformance``).

Installed (editable) into the development venv by ``scripts/dev setup``; it needs a
source checkout (``web/``, ``web/node_modules``, Playwright for the browser backends).
"""
