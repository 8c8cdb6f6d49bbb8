// The Web Worker of one monty-runtime runtime: the entry a page starts
// (`new Worker(".../worker.js", {type: "module"})`). The worker's code is in worker/:
// main.js (messages and the boot), boot.js (the boot steps), lockdown.js, csp-check.js,
// memory-cap.js. This file is served with the worker's Content-Security-Policy, which
// covers everything it imports.
import "./worker/main.js";
