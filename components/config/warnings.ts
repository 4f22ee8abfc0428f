// What a valid config still does at some risk, said on every plan and
// preview (pulumi.log.warn) so that accepting it stays a visible choice.
import { PINNED_REVISION, StackConfig } from "./schema";

export function configWarnings(c: StackConfig): string[] {
  const out: string[] = [];
  if (c.model.trustRemoteCode) {
    out.push(
      c.model.revision && PINNED_REVISION.test(c.model.revision)
        ? `model.trustRemoteCode: vLLM runs the Python code of ${c.model.id} at commit ${c.model.revision.slice(0, 12)} on the host -> review that code; keep the revision pinned`
        : `model.trustRemoteCode: vLLM runs the Python code of ${c.model.id} as it is at download time (acknowledgeRemoteCode) -> pin model.revision to a commit you reviewed`,
    );
  }
  if (c.vllm.indexUrl.startsWith("http://")) {
    out.push("vllm.indexUrl: packages come over plain http (allowInsecureIndex) -> use an https:// mirror");
  }
  if (c.connection.insecureSkipHostKeyCheck && !c.connection.hostKey && !c.connection.hostKeyPath) {
    out.push("connection.insecureSkipHostKeyCheck: any host answering at the address gets the SSH session and the secrets -> pin connection.hostKey");
  }
  if (c.topology === "slurm" && c.slurm.nodes > 1 && c.slurm.launcher === "ray") {
    out.push(
      `slurm.launcher: ray (vLLM ${c.vllm.version} has no native multi-node launcher): the job turns on Ray's token authentication, which only Ray 2.52 and newer enforce; an older Ray lets any cluster user who reaches its ports run code as you -> pin vLLM 0.11.1 or newer for the native launcher`,
    );
  }
  return out;
}
