// Precompressed copies for static servers: writes FILE.gz (gzip -9) and FILE.br
// (brotli) next to each FILE given, for nginx gzip_static/brotli_static, Caddy
// `file_server { precompressed br gzip }` and the dev server (docs/first-visit.md).
//
//   node scripts/precompress.mjs FILE...
//
// Prints one JSON line per file: {file, bytes, gzip, br}. Brotli quality 6 with a
// 16 MB window: within ~15% of quality 11 on the snapshot at a small part of its time.
import { readFile, rename, writeFile } from "node:fs/promises";
import { constants, gzipSync, brotliCompressSync } from "node:zlib";

const BROTLI_QUALITY = 6;
const BROTLI_WINDOW = 24;

async function writeAtomic(path, bytes) {
  await writeFile(`${path}.tmp`, bytes);
  await rename(`${path}.tmp`, path);
}

for (const file of process.argv.slice(2)) {
  const bytes = await readFile(file);
  const gz = gzipSync(bytes, { level: 9 });
  const br = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  await writeAtomic(`${file}.gz`, gz);
  await writeAtomic(`${file}.br`, br);
  console.log(JSON.stringify({ file, bytes: bytes.length, gzip: gz.length, br: br.length }));
}
