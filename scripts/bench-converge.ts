// `npm run bench:converge`: converge timings of the dev stack's shape on a
// fresh sandbox host, through the real engine. Prints, for the first up, a
// no-op up and a max-model-len change: wall time, resources changed, SSH
// sessions the host accepted. (Figures, not assertions: the tests assert.)
import * as os from "os";
import { bootSandbox, freePort, shutdownSandbox, sshOk } from "../test/host/sandbox";
import { putStandinWheels, trustMachineCAs } from "../test/standin/fixtures";
import { openStack, removeStack, stackConfigFor } from "../test/e2e/engine";

async function sshSessions(sb: Awaited<ReturnType<typeof bootSandbox>>): Promise<number> {
  const out = await sshOk(sb, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey' || true");
  return Number(out.trim());
}

async function main() {
  const sb = await bootSandbox("bench");
  const port = await freePort();
  const rows: string[] = [];
  let stack;
  try {
    await trustMachineCAs(sb);
    putStandinWheels(sb, ["0.11.0"]);
    stack = await openStack(`bench-${process.pid}`, stackConfigFor(sb, port));
    const run = async (label: string) => {
      const s0 = await sshSessions(sb);
      const t0 = Date.now();
      const r = await stack!.up();
      const secs = (Date.now() - t0) / 1000;
      // the bench's own journal query is one session too
      const sessions = (await sshSessions(sb)) - s0 - 1;
      const ch = (r.summary.resourceChanges ?? {}) as Record<string, number>;
      const changed = Object.entries(ch).filter(([k]) => k !== "same").reduce((a, [, v]) => a + v, 0);
      rows.push(`${label.padEnd(22)} ${secs.toFixed(1).padStart(7)} s  ${String(changed).padStart(3)} resources changed  ${String(sessions).padStart(3)} SSH sessions`);
    };
    await run("first up");
    await run("no-op up");
    stack = await openStack(stack.name, stackConfigFor(sb, port, (c) => (c.serving = { ...c.serving, maxModelLen: 4096 })));
    await run("max-model-len change");
    await stack.destroy();
  } finally {
    if (stack) await removeStack(stack).catch(() => undefined);
    await shutdownSandbox(sb);
  }
  console.log(`bench:converge  ${new Date().toISOString().slice(0, 10)}  ${os.cpus().length} cores ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB  (sandbox host: Debian bookworm in systemd-nspawn, vLLM stand-in)`);
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
