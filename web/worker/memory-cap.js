// The memory cap of one worker (limits.memory).
//
// Contract: once a cap is set, no WebAssembly memory of this worker grows past it.
// Pyodide's heap is a WebAssembly.Memory that Emscripten grows from JavaScript
// (`_emscripten_resize_heap` -> `wasmMemory.grow(pages)`, catching the RangeError):
// when growth is refused, `sbrk` fails, `malloc` returns NULL and Python raises
// MemoryError in the code that allocated. The heap keeps its size (WebAssembly memory
// never shrinks) and the interpreter is unharmed: the REPL and its globals survive.
//
// `installMemoryCap()` replaces WebAssembly.Memory.prototype.grow, before Pyodide
// loads, with a version that refuses growth past the cap; the property is made
// read-only and non-configurable, so Python code that reaches JavaScript cannot put
// the original back. During the boot there is no cap (a snapshot restore grows the
// heap to the snapshot's size); worker.js sets the runtime's cap at configure and the
// Python session narrows or widens it per execution (`hooks.memoryCap`).
//
// A reserve: executed code may grow the heap to `cap - reserveFor(cap)`; the rest is
// kept for the runtime's own work once the code stopped (`openReserve`, called by the
// Python platform when an execution's code ends): unwinding a MemoryError and
// delivering the result even when the code's objects still fill the heap (a global
// list that grew in a loop). The memory the runtime used and freed is then free inside
// the heap, so the next execution can run code that frees the rest. Each execution
// closes the reserve again (`rearmReserve`). Past `cap` every growth fails. So `cap`
// is the hard bound; growth happens in steps (Emscripten asks for 5-20% more than it
// needs), so the heap may stop a little below a line.
//
// When the heap is filled with millions of small objects (a deep structure built in a
// loop), the reserve cannot be opened without allocating: each execution under a cap
// holds a ballast (src/monty_runtime/bridge.py) freed first thing when its code stops,
// which lets the MemoryError be reported. If Python still cannot recover, worker.js
// reports the worker as failed and the page replaces it (WorkerCrashed, the next
// result says sessionLost). Never a hang, never an unbounded worker.
//
// What it does not bound: JavaScript objects the code could make if it reached
// JavaScript (the import guard refuses `js`; that is defence in depth), and a wasm
// module compiled by such code that grows memory with the `memory.grow` instruction.
// The README's residual risks say so.

const PAGE = 65536;
/** Kept back from executed code for the runtime's own work after a MemoryError: at
 * least RESERVE_BYTES, and an eighth of the cap (a heap growth step is 5-20%). */
export const RESERVE_BYTES = 16 * 2 ** 20;
export const reserveFor = (cap) => Math.max(RESERVE_BYTES, Math.floor(cap / 8));

let cap = Infinity; // bytes; Infinity: no cap
let installed = false;
/** @type {WebAssembly.Memory | null} the largest memory seen growing (Pyodide's heap) */
let heap = null;
let refusals = 0;
let reserveOpen = false;

/** Replace WebAssembly.Memory.prototype.grow (idempotent). Call before Pyodide loads. */
export function installMemoryCap() {
  if (installed) return;
  const proto = WebAssembly.Memory.prototype;
  const original = proto.grow;
  Object.defineProperty(proto, "grow", {
    value: function grow(delta) {
      const current = this.buffer.byteLength;
      if (heap === null || current >= heap.buffer.byteLength) heap = this;
      const after = current + Number(delta) * PAGE;
      if (Number.isFinite(cap) && (after > cap || (!reserveOpen && after > cap - reserveFor(cap)))) {
        refusals += 1;
        throw new RangeError(`WebAssembly.Memory.grow(): the worker's memory cap of ${cap} bytes is reached`);
      }
      return original.call(this, delta);
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });
  installed = true;
}

/** Set the cap in bytes (null or undefined: no cap). */
export function setMemoryCap(bytes) {
  cap = bytes == null ? Infinity : Number(bytes);
}

/** An execution starts: its code may not use the reserve. */
export function rearmReserve() {
  reserveOpen = false;
}

/** The code of an execution stopped: the runtime may use the reserve. */
export function openReserve() {
  reserveOpen = true;
}

export function memoryCap() {
  return Number.isFinite(cap) ? cap : null;
}

/** Bytes of Pyodide's heap now (`module` is Pyodide's Emscripten module, if known). */
export function heapBytes(module = null) {
  const buffer = module?.HEAPU8?.buffer ?? heap?.buffer ?? null;
  return buffer ? buffer.byteLength : 0;
}

/** How many growths were refused so far (worker.js: a failure after a refusal is the
 * cap's doing). */
export function memoryRefusals() {
  return refusals;
}

/** The smallest cap a worker whose heap after boot is `floor` bytes accepts. */
export function minimumCap(floor) {
  return floor + RESERVE_BYTES;
}

/**
 * Why `bytes` cannot be this worker's cap, or null. The heap after the boot is the
 * floor: a cap below it could never be honoured (the memory is taken already).
 */
export function capProblem(bytes, floor, what = "limits.memory") {
  if (bytes == null) return null;
  if (!(Number.isSafeInteger(bytes) && bytes > 0)) return `${what} must be a positive integer number of bytes`;
  const minimum = minimumCap(floor);
  if (bytes < minimum) {
    const mib = Math.ceil(minimum / 2 ** 20);
    return `${what}=${bytes} is below this runtime's minimum of ${minimum} bytes (${mib} MiB: ` +
      `the worker's heap after boot, ${floor} bytes, plus a reserve of ${RESERVE_BYTES}); give at least that`;
  }
  return null;
}

/**
 * Free what is left of the boot once Python is up, each a copy per worker: the
 * snapshot's bytes as they arrived (as large as the heap itself: Pyodide copied them
 * into its memory and wrote the files into its file system), Pyodide's references to
 * them (`config._loadSnapshot`, and `config.fsInit`, which holds the snapshot). The
 * buffers are detached with `ArrayBuffer.prototype.transfer(0)`, which frees their
 * memory now: an idle worker may not collect garbage for a long time. Returns what was
 * released.
 */
export function releaseBootData(pyodide, snapshot = null) {
  const released = [];
  const config = pyodide?._api?.config;
  if (config && typeof config === "object") {
    for (const key of ["_loadSnapshot", "fsInit"]) {
      if (config[key] != null) {
        try {
          config[key] = undefined;
          released.push(key);
        } catch {
          // read-only in this Pyodide: kept
        }
      }
    }
  }
  for (const part of ["pyodide", "files"]) {
    const buffer = snapshot?.[part]?.buffer;
    if (buffer instanceof ArrayBuffer && typeof buffer.transfer === "function" && !buffer.detached) {
      buffer.transfer(0);
      released.push(`snapshot.${part}`);
    }
  }
  return released;
}
