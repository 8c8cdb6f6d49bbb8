#!/usr/bin/env node
// monty-runtime (npm): copy the browser runtime into a site folder, print server headers.
//
//   npx monty-runtime export SITE [--subdir monty-runtime] [--headers netlify|cloudflare|vercel] [--force]
//   npx monty-runtime headers nginx|caddy|netlify|cloudflare|vercel [--path /monty-runtime/] [--root DIR] [--address HOST]
//   npx monty-runtime --version
//
// `export` writes SITE/<subdir>/ (the modules, dist/, pyodide/: the runtime only) as
// `monty-runtime export` of the Python package does; the header texts are the Python
// package's (deploy.json, generated when the package is built).
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const deploy = JSON.parse(readFileSync(join(pkgDir, "deploy.json"), "utf8"));
const version = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;

function fail(message, code = 1) {
  console.error(`monty-runtime: ${message}`);
  process.exit(code);
}

function options(args, known) {
  const out = { _: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) { out._.push(a); continue; }
    const name = a.slice(2);
    if (!known.includes(name)) fail(`unknown option ${a}`, 2);
    if (name === "force") { out.force = true; continue; }
    if (i + 1 >= args.length) fail(`${a} needs a value`, 2);
    (out[name] ??= []).push(args[++i]);
  }
  return out;
}

function urlPath(subdir) {
  const clean = subdir.replace(/^\/+|\/+$/g, "");
  if (!clean || clean.split("/").includes("..") || !/^[A-Za-z0-9._~/-]+$/.test(clean)) {
    fail(`--subdir ${JSON.stringify(subdir)}: use a plain relative folder like monty-runtime`, 2);
  }
  return `/${clean}/`;
}

function snippet(kind, { path = "/monty-runtime/", root = "/srv/site", address = "example.com" } = {}) {
  const text = deploy.headers[kind];
  if (text === undefined) fail(`unknown host kind ${kind} (one of ${Object.keys(deploy.headers).join(", ")})`, 2);
  return text.replaceAll(deploy.placeholders.path, urlPath(path))
    .replaceAll(deploy.placeholders.root, root).replaceAll(deploy.placeholders.address, address);
}

function pyodideDir() {
  try {
    return dirname(createRequire(join(pkgDir, "package.json")).resolve("pyodide/package.json"));
  } catch (err) {
    fail(`cannot find the pyodide package (a dependency of monty-runtime): ${err.message}; run npm install`);
  }
}

function exportSite(args) {
  const opts = options(args, ["subdir", "headers", "force"]);
  if (opts._.length !== 1) fail("usage: monty-runtime export SITE [--subdir DIR] [--headers netlify|cloudflare|vercel] [--force]", 2);
  const site = resolve(opts._[0]);
  const prefix = urlPath(opts.subdir?.at(-1) ?? "monty-runtime");
  const runtime = join(site, prefix);
  const targets = [];
  for (const kind of opts.headers ?? []) {
    if (!["netlify", "cloudflare", "vercel"].includes(kind)) {
      fail(`--headers ${kind}: export writes netlify, cloudflare or vercel files; print server snippets with \`monty-runtime headers ${kind}\``, 2);
    }
    const file = join(site, kind === "vercel" ? "vercel.json" : "_headers");
    if (existsSync(file) && !opts.force) fail(`${file} exists: add the lines of \`monty-runtime headers ${kind} --path ${prefix}\` by hand, or pass --force`);
    targets.push([file, snippet(kind, { path: prefix })]);
  }
  if (existsSync(runtime)) {
    if (!existsSync(join(runtime, "dist", "build-info.json"))) fail(`${runtime} exists and is not an earlier export: choose another --subdir`);
    rmSync(runtime, { recursive: true });
  }
  const pyodide = pyodideDir();
  let bytes = 0;
  const copy = (from, to) => {
    if (!existsSync(from)) fail(`${from} is missing: reinstall monty-runtime (npm install)`);
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, to);
    bytes += readFileSync(to).length;
  };
  for (const rel of deploy.files) copy(join(pkgDir, rel), join(runtime, rel));
  for (const name of deploy.pyodideFiles) copy(join(pyodide, name), join(runtime, "pyodide", name));
  writeFileSync(join(runtime, "layout.js"), deploy.exportLayout);
  writeFileSync(join(site, ".nojekyll"), "");
  for (const [file, text] of targets) writeFileSync(file, text);
  console.log(`export: ${deploy.files.length + deploy.pyodideFiles.length} files, ${(bytes / 1e6).toFixed(1)} MB -> ${runtime}`);
  for (const [file] of targets) console.log(`export: headers -> ${file}`);
  console.log(`export: in your page: import { MontyRuntime } from ".${prefix}monty-runtime.js";`);
}

const [command, ...rest] = process.argv.slice(2);
if (command === "--version" || command === "-V") {
  console.log(`monty-runtime ${version} (npm)`);
} else if (command === "export") {
  exportSite(rest);
} else if (command === "headers") {
  const opts = options(rest, ["path", "root", "address"]);
  if (opts._.length !== 1) fail("usage: monty-runtime headers nginx|caddy|netlify|cloudflare|vercel [--path P]", 2);
  process.stdout.write(snippet(opts._[0], { path: opts.path?.at(-1), root: opts.root?.at(-1), address: opts.address?.at(-1) }));
} else {
  console.error("usage: monty-runtime export SITE [--subdir DIR] [--headers netlify|cloudflare|vercel] [--force]\n" +
                "       monty-runtime headers nginx|caddy|netlify|cloudflare|vercel [--path P]\n" +
                "       monty-runtime --version");
  process.exit(command === undefined || command === "--help" || command === "-h" ? 0 : 2);
}
