// The README's examples, type-checked against web/monty-runtime.d.ts and web/tools.d.ts
// (by `tsc -p web/tsconfig.json` in scripts/dev test). A documented call that the
// declarations do not allow, or a result field they do not declare, fails the check.
import { MontyRuntime, StateError } from "../../web/monty-runtime.js";
import { bindTool, busyBinding, queueBinding, sandboxBinding } from "../../web/tools.js";

export async function readmeExamples(): Promise<void> {
  const rt = await MontyRuntime.create({
    functions: { get_weather: async (city: string) => ({ city, temp_c: 21 }), add: (a: number, b: number) => a + b },
    limits: { timeout: 5 },
  });
  const h = rt.execute("w = get_weather(city)\nprint(w)\nw['temp_c'] + n", { inputs: { city: "Paris", n: 1 } });
  for await (const event of h.events) console.log(event.type);
  const res = await h.result;
  console.log(res.value, res.stdout, res.error?.type, res.sessionLost);
  console.log((await rt.execute("w['city']").result).value);
  h.interrupt();
  rt.interrupt();
  try {
    await rt.execute("1").result;
  } catch (err) {
    if (err instanceof StateError) console.log(err.reason);
  }
  const tool = bindTool(rt, "queue");
  const definition = tool.definition();
  const out = await tool.call('{"code": "x = 41\\nx + 1"}');
  console.log(definition, out.status, out.value, out.stdout, out.error?.message);
  await rt.dispose();
  const sb = await MontyRuntime.create({ sandbox: true, poolSize: 2 });
  console.log(sandboxBinding(sb).name, queueBinding(rt).name, busyBinding(rt).name);
  await MontyRuntime.prewarm(1);
  await sb.dispose();
}
