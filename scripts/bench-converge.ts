// `npm run bench:converge`: converge timings of the dev stack's shape on a
// fresh sandbox host, through the real engine. Prints, for the first up, a
// no-op up and a max-model-len change: wall time, resources changed, SSH
// sessions the host accepted. Then two ratios, measured in the same run:
//   - the no-op up against a no-op up of an empty TypeScript program on the
//     same engine (what the program itself costs: start, compile, plugins);
//   - the first up against running the same step commands by hand over SSH,
//     in sequence, on a second fresh sandbox (what the orchestration costs).
// (Figures, not assertions: the tests assert.)
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, REPO_ROOT, Sandbox, shutdownSandbox, sshOk, sshRun } from "../test/host/sandbox";
import { freePort } from "../test/host/sandbox";
import { putStandinWheels, trustMachineCAs } from "../test/standin/fixtures";
import { ensureEngine, openStack, removeStack, stackConfigFor } from "../test/e2e/engine";

async function sshSessions(sb: Sandbox): Promise<number> {
  const out = await sshOk(sb, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey' || true");
  return Number(out.trim());
}

const secs = (t0: number) => (Date.now() - t0) / 1000;

/** A no-op `pulumi up` of an empty TypeScript program (after its first up), on the same engine and backend. */
async function emptyProgramNoop(): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-bench-empty-"));
  try {
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: bench-empty\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
    fs.writeFileSync(path.join(dir, "index.ts"), "export {};\n");
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "bench-empty", private: true, main: "index.ts" }));
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, target: "ES2022", module: "commonjs" }, files: ["index.ts"] }));
    fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(dir, "node_modules"));
    const stack = await LocalWorkspace.createOrSelectStack({ stackName: `bench-empty-${process.pid}`, workDir: dir }, { envVars: ensureEngine() });
    try {
      await stack.up();
      const t0 = Date.now();
      await stack.up();
      return secs(t0);
    } finally {
      await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The create commands (and stdin) of the stack's steps, in the order the engine ran them. */
async function stepCommands(stack: Stack): Promise<{ name: string; create: string; stdin?: string }[]> {
  const state = await stack.exportStack();
  const resources = (state.deployment.resources ?? []) as { type: string; urn: string; outputs?: Record<string, any> }[];
  const plain = (v: any): any => (v && typeof v === "object" && "plaintext" in v ? JSON.parse(v.plaintext) : v);
  return resources
    .filter((r) => r.type === "command:remote:Command")
    .map((r) => ({ name: r.urn.split("::").pop()!, create: plain(r.outputs?.create), stdin: plain(r.outputs?.stdin) }));
}

async function main() {
  const sb = await bootSandbox("bench");
  const hand = await bootSandbox("bench-hand");
  const port = await freePort();
  const rows: string[] = [];
  const figures: Record<string, number> = {};
  let stack: Stack | undefined;
  try {
    for (const s of [sb, hand]) {
      await trustMachineCAs(s);
      putStandinWheels(s, ["0.11.0"]);
    }
    stack = await openStack(`bench-${process.pid}`, stackConfigFor(sb, port));
    const run = async (label: string) => {
      const s0 = await sshSessions(sb);
      const t0 = Date.now();
      const r = await stack!.up();
      const t = secs(t0);
      figures[label] = t;
      // the bench's own journal query is one session too
      const sessions = (await sshSessions(sb)) - s0 - 1;
      const ch = (r.summary.resourceChanges ?? {}) as Record<string, number>;
      const changed = Object.entries(ch).filter(([k]) => k !== "same").reduce((a, [, v]) => a + v, 0);
      rows.push(`${label.padEnd(26)} ${t.toFixed(1).padStart(7)} s  ${String(changed).padStart(3)} resources changed  ${String(sessions).padStart(3)} SSH sessions`);
    };
    await run("first up");
    const commands = await stepCommands(stack);
    await run("no-op up");
    stack = await openStack(stack.name, stackConfigFor(sb, port, (c) => (c.serving = { ...c.serving, maxModelLen: 4096 })));
    await run("max-model-len change");
    await stack.destroy();

    // The same commands by hand, in sequence, on a fresh host (the first sandbox's server is gone: its port is free).
    // The swapfile's path names the sandbox: keep this host's apart.
    const t0 = Date.now();
    for (const c of commands) {
      const r = await sshRun(hand, c.create.replace(/swapfile-bench\b/g, "swapfile-bench-hand"), { stdin: c.stdin ?? "" });
      if (r.code !== 0) throw new Error(`by hand: ${c.name} failed (${r.code}):\n${r.stderr.slice(-2000)}`);
    }
    figures.hand = secs(t0);
    rows.push(`${"same steps by hand (SSH)".padEnd(26)} ${figures.hand.toFixed(1).padStart(7)} s  ${String(commands.length).padStart(3)} commands in sequence`);
    figures.empty = await emptyProgramNoop();
    rows.push(`${"empty TS program no-op up".padEnd(26)} ${figures.empty.toFixed(1).padStart(7)} s`);
  } finally {
    if (stack) await removeStack(stack).catch(() => undefined);
    await shutdownSandbox(sb);
    await shutdownSandbox(hand);
  }
  console.log(`bench:converge  ${new Date().toISOString().slice(0, 10)}  ${os.cpus().length} cores ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB  node ${process.version}  (sandbox host: Debian bookworm in systemd-nspawn, vLLM stand-in)`);
  for (const r of rows) console.log(r);
  console.log(`no-op up / empty program no-op up: ${(figures["no-op up"] / figures.empty).toFixed(2)}x (target <= 1.5x)`);
  console.log(`first up / same steps by hand:     ${(figures["first up"] / figures.hand).toFixed(2)}x (target <= 1.2x)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
