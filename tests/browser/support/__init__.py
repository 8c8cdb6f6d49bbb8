"""What the browser tests share, apart from the fixtures (conftest.py): the engine
adapters (engines.py), the runtime page helpers (runtime_page.py) and the escape-probe
harness (escape_probes.py running probe_program.py as executed code)."""
