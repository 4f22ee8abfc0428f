// The day-two commands' effects: read the stack, reach its hosts, run the
// probe. Pure parts are in status.ts, logs.ts, smoke.ts; this is the shell.
import { connectionOfServer, PulumiTarget, readStack, ServerRecord } from "./state";
import { evaluate, parseFacts, probeScript, ServerStatus } from "./status";
import { withSsh } from "./ssh";

function targetOf(s: ServerRecord): string {
  const { connection: c } = connectionOfServer(s);
  return `${c.user}@${c.host}:${c.port}${c.proxy ? ` via ${c.proxy.user}@${c.proxy.host}:${c.proxy.port}` : ""}`;
}

/** Probe one server's host over SSH and evaluate every step. */
export async function statusOfServer(s: ServerRecord): Promise<{ status: ServerStatus; warnings: string[] }> {
  const { connection, sudo } = connectionOfServer(s);
  return withSsh(connection, async (ssh) => {
    const r = await ssh.run(`${sudo ? "sudo -n " : ""}bash -s`, { stdin: probeScript(s), timeoutMs: 180_000 });
    const facts = parseFacts(r.stdout);
    const status = evaluate(s, facts, targetOf(s));
    if (facts["probe.done"] !== "1") {
      const why = (r.stderr.trim().split("\n").pop() ?? "") || `ssh exited ${r.code}`;
      for (const x of status.steps) x.details = [`could not check: ${why}`];
    }
    return { status, warnings: ssh.warnings };
  });
}

export async function stackStatus(t: PulumiTarget, server?: string): Promise<{ statuses: ServerStatus[]; warnings: string[] }> {
  const statuses: ServerStatus[] = [];
  const warnings: string[] = [];
  for (const s of readStack(t, server)) {
    const r = await statusOfServer(s);
    statuses.push(r.status);
    warnings.push(...r.warnings);
  }
  return { statuses, warnings };
}
