// Build-time memory snapshot (first visit): boots Pyodide with the web build's lock file
// and wheels, exactly as a worker's cold boot does (web/worker/boot.js), and writes the
// snapshot the page ships (web/shared/snapshot-format.js container format).
//
//   deno run --allow-read=... --allow-write=<dist> scripts/make-snapshot.mjs <web/dist> <out file> [--no-jspi] [--as-jsc]
//
// Pyodide's boot leaves in its memory what it found in the engine, and a snapshot works
// only where that is the same (web/shared/snapshot-format.js, engineTraits): whether
// JSPI (WebAssembly stack switching) was there, and the function pointers it added to
// WebAssembly's table, which depend on how the engine's table hands out functions. The
// build runs this twice in Deno: as it is, like Chromium and Firefox (V8, SpiderMonkey),
// and with `--no-jspi --as-jsc`, like WebKit (JavaScriptCore): JSPI's constructors are
// taken off `WebAssembly` before Pyodide loads, and `Table.prototype.get` hands out an
// object of its own for each function, as JavaScriptCore's does. Prints one JSON line:
// {file, bytes, pyodideVersion, packages, madeIn, jspi, tableIdentity, trampoline, ms}.
import { readFile, writeFile, rename } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, "..", "web");
const [distArg, outArg, ...flags] = process.argv.slice(2);
if (!distArg || !outArg || flags.some((flag) => flag !== "--no-jspi" && flag !== "--as-jsc")) {
  console.error("usage: deno run -A scripts/make-snapshot.mjs <web/dist> <out file> [--no-jspi] [--as-jsc]");
  process.exit(2);
}
if (flags.includes("--no-jspi")) {
  // Pyodide checks `"Suspending" in WebAssembly` (and the older "Suspender") as its
  // module loads: without them it boots as where there is no JSPI.
  for (const name of ["Suspending", "promising", "Suspender"]) delete WebAssembly[name];
  if ("Suspending" in WebAssembly || "promising" in WebAssembly || "Suspender" in WebAssembly) {
    console.error("make-snapshot: cannot take JSPI off WebAssembly here");
    process.exit(1);
  }
}
if (flags.includes("--as-jsc")) {
  // JavaScriptCore's Table.prototype.get returns an object of its own for a function, not
  // the one the module exports: Emscripten's addFunction then does not find an exported
  // function in the table and appends it again, so the table grows and the function
  // pointers Pyodide's boot stores in memory differ from V8's (wasmTableIdentity).
  const get = WebAssembly.Table.prototype.get;
  const seen = new WeakMap();
  WebAssembly.Table.prototype.get = function (index) {
    const fn = get.call(this, index);
    if (typeof fn !== "function") return fn;
    let other = seen.get(fn);
    if (other === undefined) {
      other = new Proxy(fn, {});
      seen.set(fn, other);
    }
    return other;
  };
}
const dist = path.resolve(distArg);
const out = path.resolve(outArg);

const { SNAPSHOT_PRELOAD, packSnapshot } = await import(pathToFileURL(path.join(web, "shared", "snapshot-format.js")).href);
const { atInstantiation, initialImage, makeSnapshot } = await import(pathToFileURL(path.join(web, "worker", "snapshot.js")).href);
const { loadPackageStrict } = await import(pathToFileURL(path.join(web, "worker", "boot.js")).href);
const { loadPyodide, version } = await import(pathToFileURL(path.join(web, "node_modules", "pyodide", "pyodide.mjs")).href);

const t0 = performance.now();
const lock = JSON.parse(await readFile(path.join(dist, "pyodide-lock.json"), "utf8"));
// The memory as instantiated: the snapshot stores its start as a delta against it.
let image = null;
const pyodide = await atInstantiation(() => loadPyodide({
  indexURL: path.join(web, "node_modules", "pyodide") + path.sep,
  lockFileContents: lock,
  packageBaseUrl: dist + path.sep,
  checkAPIVersion: true,
  _makeSnapshot: true,
  stdout: () => {},
  stderr: (line) => console.error(line),
}), (memory) => {
  image = initialImage(memory);
});
if (image === null) throw new Error("cannot snapshot: Pyodide's module was not instantiated as expected");
await loadPackageStrict(pyodide, "monty-runtime", dist);
await loadPackageStrict(pyodide, "micropip", dist);
pyodide.pyimport("monty_runtime").destroy();
for (const name of SNAPSHOT_PRELOAD) pyodide.pyimport(name).destroy();
const check = pyodide.pyimport("monty_runtime._snapshot");
const problem = check.check_clean();
check.destroy();
if (typeof problem === "string") throw new Error(`cannot snapshot: ${problem}`);
const snapshot = makeSnapshot(pyodide, lock, image);
snapshot.meta.madeIn = typeof globalThis.Deno === "object" ? "deno" : "node";
const bytes = new Uint8Array(await packSnapshot(snapshot).arrayBuffer());
await writeFile(`${out}.tmp`, bytes);
await rename(`${out}.tmp`, out);
console.log(JSON.stringify({
  file: path.basename(out),
  bytes: bytes.length,
  pyodideVersion: version,
  packages: snapshot.meta.packages,
  madeIn: snapshot.meta.madeIn,
  jspi: snapshot.meta.jspi,
  tableIdentity: snapshot.meta.tableIdentity,
  trampoline: snapshot.meta.trampoline,
  ms: Math.round(performance.now() - t0),
}));
