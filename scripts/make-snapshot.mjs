// Build-time memory snapshot (first visit): boots Pyodide with the web build's lock file
// and wheels, exactly as a worker's cold boot does (web/worker/boot.js), and writes the
// snapshot the page ships (web/shared/snapshot-format.js container format).
//
//   deno run --allow-read=... --allow-write=<dist> scripts/make-snapshot.mjs <web/dist> <out file>
//
// The build runs it in Deno, which has JSPI like Chromium and Firefox: Pyodide keeps in
// its memory whether JSPI was there at boot, and a snapshot works only where that is the
// same (web/shared/snapshot-format.js, jspiAvailable). It runs in Node too (no JSPI: a snapshot for
// engines without it). Prints one JSON line: {file, bytes, pyodideVersion, packages,
// madeIn, jspi, ms}.
import { readFile, writeFile, rename } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, "..", "web");
const [distArg, outArg] = process.argv.slice(2);
if (!distArg || !outArg) {
  console.error("usage: deno run -A scripts/make-snapshot.mjs <web/dist> <out file>");
  process.exit(2);
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
  ms: Math.round(performance.now() - t0),
}));
