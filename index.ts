// The stack program: the stack's config (Pulumi.<stack>.yaml) -> one server -> its outputs.
// All the work is in the library (src/index.ts); a bad config or a server that does not
// fit fails `pulumi preview` with `key: problem -> fix` lines.
// A model outside the catalog is fetched from the Hugging Face Hub while the config loads (cached).
import { definedOutputs, orRunError, stackServerArgsWithHub, VllmServer, VllmSlurmServer } from "./src";

export = (async () => {
  const stack = await stackServerArgsWithHub();
  let outputs: Record<string, unknown>;
  if (stack.topology === "single") {
    const s = orRunError(() => new VllmServer("vllm", stack.args));
    outputs = { endpoint: s.endpoint, servedModelName: s.servedModelName, unitName: s.unitName, apiKey: s.apiKey, tunnel: s.tunnel, plan: s.plan, measured: s.measured, modelCommit: s.modelCommit };
  } else {
    const s = orRunError(() => new VllmSlurmServer("vllm", stack.args));
    outputs = { endpoint: s.endpoint, servedModelName: s.servedModelName, jobId: s.jobId, headNode: s.headNode, apiKey: s.apiKey, tunnel: s.tunnel, plan: s.plan, measured: s.measured, modelCommit: s.modelCommit };
  }
  return definedOutputs(outputs);
})();
