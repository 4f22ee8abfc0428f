// `npm run bench:converge`: converge timings of the dev stack's shape on a
// fresh sandbox host, through the real engine. Prints, for the first up, a
// no-op up and a max-model-len change: wall time, resources changed, SSH
// sessions the host accepted; then a vLLM upgrade (0.11.0 -> 0.13.0: a new
// venv, the switch, the gate) and an upgrade to a release that does not start
// (0.12.0, built to crash: rolled back), each with the time `pulumi up` spends
// in each step and the seconds the server's /health went unanswered.
// Then two ratios, measured in the same run:
//   - the no-op up against a no-op up of an empty TypeScript program on the
//     same engine (what the program itself costs: start, compile, plugins);
//   - the first up against running the same step commands by hand over SSH,
//     in sequence, on a second fresh sandbox (what the orchestration costs).
// (Figures, not assertions: the tests assert.)
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
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

/** Seconds /health went unanswered: the sum of the gaps between the last answer before and the first after. */
function downtime(samples: { t: number; ok: boolean }[]): number {
  let total = 0;
  let lastOk: number | undefined;
  let down = false;
  for (const s of samples) {
    if (s.ok) {
      if (down && lastOk !== undefined) total += s.t - lastOk;
      lastOk = s.t;
      down = false;
    } else down = true;
  }
  return total / 1000;
}

/** One `pulumi up` with the time each command step ran and the server's /health polled every 200 ms. */
async function timedUp(stack: Stack, port: number): Promise<{ wall: number; failed: boolean; steps: Record<string, number>; down: number }> {
  const start: Record<string, number> = {};
  const steps: Record<string, number> = {};
  const samples: { t: number; ok: boolean }[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const t = Date.now();
      const ok = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
      samples.push({ t, ok });
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const onEvent = (e: EngineEvent) => {
    const m = e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
    if (!m || m.type !== "command:remote:Command") return;
    const name = m.urn.split("::").pop()!;
    if (e.resourcePreEvent) start[name] = Date.now();
    else if (start[name] !== undefined) steps[name] = (steps[name] ?? 0) + secs(start[name]);
  };
  const t0 = Date.now();
  let failed = false;
  try {
    await stack.up({ onEvent });
  } catch {
    failed = true;
  } finally {
    polling = false;
    await poller;
  }
  return { wall: secs(t0), failed, steps, down: downtime(samples) };
}

async function main() {
  // PV_BENCH_TAG: sandbox names of their own when several benches share a machine
  const tag = process.env.PV_BENCH_TAG ? `-${process.env.PV_BENCH_TAG}` : "";
  const sb = await bootSandbox(`bench${tag}`);
  const hand = await bootSandbox(`bench${tag}-hand`);
  const port = await freePort();
  const rows: string[] = [];
  const figures: Record<string, number> = {};
  let stack: Stack | undefined;
  try {
    for (const s of [sb, hand]) {
      await trustMachineCAs(s);
      putStandinWheels(s, ["0.11.0"]);
    }
    putStandinWheels(sb, ["0.13.0"]);
    putStandinWheels(sb, ["0.12.0"], { crash: true });
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
    for (const [label, version] of [["upgrade 0.11.0 -> 0.13.0", "0.13.0"], ["upgrade to 0.12.0 (crashes)", "0.12.0"]]) {
      stack = await openStack(stack.name, stackConfigFor(sb, port, (c) => {
        c.serving = { ...c.serving, maxModelLen: 4096 };
        c.vllm = { ...c.vllm, version };
      }));
      const u = await timedUp(stack, port);
      const step = (n: string) => (u.steps[n] === undefined ? "-" : `${u.steps[n].toFixed(1)} s`);
      rows.push(
        `${label.padEnd(26)} ${u.wall.toFixed(1).padStart(7)} s  ${u.failed ? "up failed, rolled back" : "up succeeded"}; install ${step("vllm-vllm-install")}, switch ${step("vllm-launch-unit")}, gate ${step("vllm-launch-readiness")}; /health unanswered ${u.down.toFixed(1)} s`,
      );
    }
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
