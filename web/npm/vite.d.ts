/** The Vite plugin of monty-runtime: serves and emits the runtime's files (see vite.js). */
export interface MontyRuntimeViteOptions {
  /** Folder of the runtime under Vite's `base` (default "monty-runtime"). */
  subdir?: string;
}
// A Vite Plugin object (typed loosely so that this package needs no dependency on vite).
export default function montyRuntime(options?: MontyRuntimeViteOptions): {
  name: string;
  [hook: string]: unknown;
};
