/**
 * Where the runtime's files are, as URLs: the one module that knows the folder layout.
 *
 * - `RUNTIME_DIR`: the folder of `worker.js`, the other modules and `dist/` (the worker
 *   wheel, `pyodide-lock.json`, `build-info.json`);
 * - `PYODIDE_DIR`: the folder of `pyodide.mjs`, `pyodide.asm.mjs`, `pyodide.asm.wasm`
 *   and `python_stdlib.zip`.
 *
 * In a checkout Pyodide is `web/node_modules/pyodide/`. `monty-runtime export` writes
 * its own copy of this file (Pyodide in `./pyodide/`), the npm package too (`../pyodide/`,
 * the pinned dependency beside it), and the Vite plugin (`monty-runtime/vite`) gives the
 * page a version pointing at the folder it serves. Options `workerURL`, `indexURL`,
 * `lockFileURL` of `MontyRuntime.create()` override these defaults.
 */
export const RUNTIME_DIR = new URL("./", import.meta.url).href;
export const PYODIDE_DIR = new URL("./node_modules/pyodide/", import.meta.url).href;
