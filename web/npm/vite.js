// monty-runtime/vite: the Vite plugin. In vite.config.js:
//
//   import montyRuntime from "monty-runtime/vite";
//   export default { plugins: [montyRuntime()] };
//
// - dev server: serves the runtime (the worker and its modules, dist/, Pyodide's files)
//   as they are, under <base>monty-runtime/, never through Vite's transforms (so
//   pyodide.mjs's Node-only `import("ws")` is never looked at), with the worker's
//   Content-Security-Policy; every response gets the cross-origin isolation headers;
// - `vite build`: writes the same files into <outDir>/monty-runtime/ (the worker is not
//   bundled: it runs from its own modules under its own policy);
// - the page's `layout.js` points at that folder, so `import { MontyRuntime } from
//   "monty-runtime"` works unchanged; monty-runtime is left out of dependency
//   pre-bundling (its modules must keep their own URLs);
// - `vite preview` sends the same headers. Your production server needs them too:
//   `npx monty-runtime headers nginx|caddy|netlify|cloudflare|vercel`.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = dirname(fileURLToPath(import.meta.url));
const deploy = JSON.parse(readFileSync(join(pkgDir, "deploy.json"), "utf8"));

const PAGE_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
};
const WORKER_CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'none'; worker-src 'self'";
const TYPES = {
  ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
  ".json": "application/json", ".whl": "application/zip", ".zip": "application/zip",
  ".ts": "text/plain",
};

function pyodideDir() {
  return dirname(createRequire(join(pkgDir, "package.json")).resolve("pyodide/package.json"));
}

/** Relative path in the runtime folder -> { file } or { text }. */
function runtimeFiles() {
  const files = new Map();
  for (const rel of deploy.files) files.set(rel, { file: join(pkgDir, rel) });
  files.set("layout.js", { text: deploy.exportLayout });
  const pyodide = pyodideDir();
  for (const name of deploy.pyodideFiles) files.set(`pyodide/${name}`, { file: join(pyodide, name) });
  for (const [rel, entry] of files) {
    if (entry.file && !existsSync(entry.file)) {
      throw new Error(`monty-runtime/vite: ${entry.file} is missing (for ${rel}): reinstall monty-runtime (npm install)`);
    }
  }
  return files;
}

function pageLayout(prefix) {
  const at = (p) => `new URL(${JSON.stringify(p)}, globalThis.location.href).href`;
  return `// monty-runtime/vite: the runtime is served from ${prefix}\n` +
    `export const RUNTIME_DIR = ${at(prefix)};\nexport const PYODIDE_DIR = ${at(`${prefix}pyodide/`)};\n`;
}

function headerMiddleware(prefix, files) {
  return (req, res, next) => {
    for (const [k, v] of Object.entries(PAGE_HEADERS)) res.setHeader(k, v);
    const path = decodeURIComponent((req.url ?? "/").split("?")[0]);
    if (!path.startsWith(prefix)) return next();
    res.setHeader("Content-Security-Policy", WORKER_CSP);
    if (!files) return next(); // preview: the built files are served by Vite
    const entry = files.get(path.slice(prefix.length));
    if (!entry) return next();
    res.setHeader("Content-Type", TYPES[extname(path)] ?? "application/octet-stream");
    res.setHeader("Cache-Control", "no-cache");
    res.end(entry.text ?? readFileSync(entry.file));
  };
}

/**
 * @param {{ subdir?: string }} [options] folder of the runtime under Vite's `base`
 *   (default "monty-runtime")
 */
export default function montyRuntime({ subdir = "monty-runtime" } = {}) {
  const clean = subdir.replace(/^\/+|\/+$/g, "");
  const layoutFile = join(pkgDir, "layout.js");
  let prefix = `/${clean}/`;
  let files;
  return {
    name: "monty-runtime",
    config() {
      return { optimizeDeps: { exclude: ["monty-runtime"] } };
    },
    configResolved(config) {
      prefix = `${config.base.endsWith("/") ? config.base : `${config.base}/`}${clean}/`;
      files = runtimeFiles();
    },
    load(id) {
      if (id.split("?")[0] === layoutFile) return pageLayout(prefix);
      return null;
    },
    configureServer(server) {
      server.middlewares.use(headerMiddleware(prefix, files));
    },
    configurePreviewServer(server) {
      server.middlewares.use(headerMiddleware(prefix, null));
    },
    generateBundle() {
      for (const [rel, entry] of files) {
        this.emitFile({ type: "asset", fileName: `${clean}/${rel}`, source: entry.text ?? readFileSync(entry.file) });
      }
    },
  };
}
