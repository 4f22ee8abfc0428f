// The stack program: the stack's config (Pulumi.<stack>.yaml) -> one server -> its outputs.
// All the work is in the library (src/index.ts); a bad config or a server that does not
// fit fails `pulumi preview` with `key: problem -> fix` lines.
import { definedOutputs, orRunError, stackServerArgs, VllmServer, VllmSlurmServer } from "./src";

const stack = stackServerArgs();
let outputs: Record<string, unknown>;
if (stack.topology === "single") {
  const s = orRunError(() => new VllmServer("vllm", stack.args));
  outputs = { endpoint: s.endpoint, servedModelName: s.servedModelName, unitName: s.unitName, apiKey: s.apiKey, tunnel: s.tunnel, plan: s.plan, modelCommit: s.modelCommit };
} else {
  const s = orRunError(() => new VllmSlurmServer("vllm", stack.args));
  outputs = { endpoint: s.endpoint, servedModelName: s.servedModelName, jobId: s.jobId, headNode: s.headNode, apiKey: s.apiKey, tunnel: s.tunnel, plan: s.plan, modelCommit: s.modelCommit };
}

export = definedOutputs(outputs);
