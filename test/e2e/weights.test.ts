// The weights step through the real engine on a real host: `pulumi up` of a
// gated model without a token fails at the weights step with the fix and no
// unit; with the token (a secret) the step downloads from the Hugging Face Hub
// stand-in (test/standin/hub.ts) with progress in the engine's output, the
// unit starts vLLM (the stand-in) with HF_HUB_OFFLINE=1 from those files, the
// commit is a stack output and the token is in no state, log or argv; a second
// up changes nothing; destroy with removeModelCache removes the model.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawn } from "child_process";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, freePort, REPO_ROOT, Sandbox, shutdownSandbox, sshOk, sshRun } from "../host/sandbox";
import { NEWEST_RECORD, putStandinWheels, trustMachineCAs, writeHubRepo } from "../standin/fixtures";
import { startStandinHub, StandinHub } from "../standin/hub";
import { changesOf, ensureEngine, openStack, pathsHolding, removeStack, stackConfigFor } from "./engine";

jest.setTimeout(30 * 60 * 1000);

const MODEL = "Qwen/Qwen2.5-7B-Instruct"; // the catalog's; the hub stand-in serves a small fake of it
const TOKEN = `hf_e2eWeights${Math.random().toString(36).slice(2, 12)}`;
const CACHE = "/var/cache/pv-e2e-weights/huggingface";
const REPO_DIR = `${CACHE}/hub/models--Qwen--Qwen2.5-7B-Instruct`;
let sb: Sandbox;
let hub: StandinHub;
let root: string;
let stack: Stack;
let port: number;
const log: string[] = [];

async function up(): Promise<{ events: EngineEvent[]; summary: Record<string, number> }> {
  const events: EngineEvent[] = [];
  const r = await stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => log.push(o) });
  return { events, summary: r.summary.resourceChanges as Record<string, number> };
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pv-e2e-hub-"));
  // past huggingface_hub's 10 MB write chunk, so that a progress line shows bytes
  writeHubRepo(root, MODEL, 24 * 1024 * 1024, 7);
  hub = await startStandinHub({ root, gated: { [MODEL]: TOKEN } });
  sb = await bootSandbox("weights-e2e");
  port = await freePort();
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0"]);
  const config = stackConfigFor(
    sb,
    port,
    (c) => {
      c.model = { ...c.model, download: true };
      // huggingface_hub from PyPI with the stand-in (real vLLM brings it)
      c.vllm = { ...c.vllm, package: "vllm-standin[hub]=={version}", noIndex: false };
      c.host = { ...c.host, cacheDir: CACHE, removeModelCache: true, env: { HF_ENDPOINT: hub.url } };
    },
    { relativeTo: REPO_ROOT },
  );
  stack = await openStack(`e2e-weights-${process.pid}`, config);
});

afterAll(async () => {
  if (stack) await removeStack(stack).catch(() => undefined);
  if (sb) await shutdownSandbox(sb);
  if (hub) await hub.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("1. a gated model without a token: up fails at the weights step with the fix; no unit, nothing fetched", async () => {
  await expect(up()).rejects.toThrow(/Qwen\/Qwen2\.5-7B-Instruct is gated: downloading it needs a Hugging Face token .* -> pulumi config set --secret pulumi-vllm:hfToken <token>/);
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
  expect(hub.requests.filter((r) => r.path.includes("/resolve/"))).toEqual([]);
});

test("2. with the token: the weights step downloads with progress, the unit serves from them offline, the commit is an output", async () => {
  await stack.setConfig("hfToken", { value: TOKEN, secret: true });
  hub.set({ bytesPerSecond: 1024 * 1024 });
  const from = log.length;
  await up();
  hub.set({ bytesPerSecond: 0 });
  const commit = hub.commitOf(MODEL);
  const out = await stack.outputs();
  expect(out.modelCommit.value).toBe(commit);
  const text = log.slice(from).join("");
  expect(text).toMatch(/weights: downloaded [0-9.]+ MiB of 24\.0 MiB \(\d+%\)/);
  expect(text).toMatch(/weights: verified 3 files/);
  const rec = JSON.parse(await sshOk(sb, NEWEST_RECORD));
  expect(rec.env.HF_HUB_OFFLINE).toBe("1");
  expect(rec.env.HF_HOME).toBe(CACHE);
  expect(rec.weights.commit).toBe(commit);
  expect(rec.weights.snapshot).toBe(`${REPO_DIR}/snapshots/${commit}`);
  const res = await fetch(`${out.endpoint.value}/models`, { headers: { Authorization: `Bearer ${out.apiKey.value}` } });
  expect(res.status).toBe(200);
});

test("3. the token is in no state, engine output, journal or process argv", async () => {
  const exported = JSON.parse(execFileSync("pulumi", ["stack", "export", "--stack", stack.name], { cwd: REPO_ROOT, env: { ...process.env, ...ensureEngine() }, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }));
  expect(pathsHolding(exported, TOKEN)).toEqual([]);
  expect(log.join("")).not.toContain(TOKEN);
  expect(await sshOk(sb, "journalctl --no-pager -o cat")).not.toContain(TOKEN);
  expect(await sshOk(sb, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")).not.toContain(TOKEN);
  // (the stand-in's own 0600 record, in the server's home, holds the environment it was given, the token
  // included, by design: it is how the tests see what reached the server; vLLM writes no such file)
  expect((await sshRun(sb, `grep -rl ${TOKEN} ${CACHE} /var/lib/pulumi-vllm /etc/systemd/system | grep -v '/vllm-standin/record[.]json$'`)).stdout).toBe("");
});

test("4. a second up changes nothing and fetches nothing", async () => {
  const gets = hub.requests.length;
  const { summary } = await up();
  expect(Object.keys(summary).filter((k) => k !== "same")).toEqual([]);
  expect(hub.requests.length).toBe(gets);
});

test("4b. status checks the weights: a removed blob is drift of the weights step alone; --repair --yes fetches it again", async () => {
  // Not spawnSync: the repair downloads from the hub stand-in, which answers from this process's event loop.
  const cli = (...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(REPO_ROOT, "bin", "pulumi-vllm.js"), ...args, "--stack", stack.name], { cwd: REPO_ROOT, env: process.env, timeout: 15 * 60 * 1000 });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (status) => resolve({ status, stdout, stderr }));
    });
  const drifted = (r: { stdout: string }) => JSON.parse(r.stdout).servers.flatMap((x: any) => x.steps.filter((y: any) => y.state === "drifted").map((y: any) => `${y.step}: ${y.details[0]}`));
  const ok = await cli("status", "--json");
  expect(ok.status).toBe(0);
  expect(JSON.parse(ok.stdout).servers[0].steps.find((x: any) => x.step === "weights")).toMatchObject({ state: "ok", details: [expect.stringMatching(/^Qwen\/Qwen2\.5-7B-Instruct at [0-9a-f]{12}: \d+ files, \d+ bytes, as verified$/)] });
  // the largest blob: the weights file
  await sshOk(sb, `rm -f -- "$(ls -S ${REPO_DIR}/blobs/* | head -n 1)"`);
  const bad = await cli("status", "--json");
  expect(bad.status).toBe(3);
  expect(drifted(bad)).toEqual([expect.stringMatching(/^weights: 1 of \d+ files of Qwen\/Qwen2\.5-7B-Instruct at [0-9a-f]{12} point at removed blobs$/)]);
  const repair = await cli("status", "--repair", "--yes");
  expect({ status: repair.status, err: repair.stderr.slice(-2000) }).toMatchObject({ status: 0 });
  expect((await cli("status")).status).toBe(0);
  // the server kept serving through the repair
  const out = await stack.outputs();
  expect((await fetch(`${out.endpoint.value}/models`, { headers: { Authorization: `Bearer ${out.apiKey.value}` } })).status).toBe(200);
});

test("5. a new commit of the model on the Hub, and a changed revision: only the weights step and the unit re-run", async () => {
  fs.writeFileSync(path.join(root, MODEL, "tokenizer.json"), JSON.stringify({ version: "2" }));
  const commit = hub.commitOf(MODEL);
  stack = await openStack(
    stack.name,
    stackConfigFor(
      sb,
      port,
      (c) => {
        c.model = { ...c.model, download: true, revision: commit };
        c.vllm = { ...c.vllm, package: "vllm-standin[hub]=={version}", noIndex: false };
        c.host = { ...c.host, cacheDir: CACHE, removeModelCache: true, env: { HF_ENDPOINT: hub.url } };
      },
      { relativeTo: REPO_ROOT },
    ),
  );
  const { events } = await up();
  const commands = changesOf(events).filter((x) => x.includes("command:remote:Command")).map((x) => x.split("::").pop()).sort();
  expect(commands).toEqual(["vllm-launch-readiness", "vllm-launch-unit", "vllm-weights"]);
  expect((await stack.outputs()).modelCommit.value).toBe(commit);
  const rec = JSON.parse(await sshOk(sb, NEWEST_RECORD));
  expect(rec.weights.commit).toBe(commit);
  expect(rec.argv).toContain(commit);
});

test("6. destroy with removeModelCache: the model the step downloaded is gone", async () => {
  await stack.destroy({ onOutput: (o) => log.push(o) });
  expect((await sshRun(sb, `test -e ${REPO_DIR}`)).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /var/lib/pulumi-vllm/weights")).code).not.toBe(0);
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
});
