// A package index that needs a login, through the real engine on a real host:
// the stack's vllm.indexUrl points at a STAND-IN index (test/standin/index-server.ts,
// https with a throw-away CA the sandbox trusts) that serves uv and the
// vllm-standin wheel behind HTTP Basic auth, and the login is the secret
// indexCredentials. `pulumi up` installs from it and serves; the login is in
// no state (exported without --show-secrets), engine output or argv on the
// host; a rotated login is an update of the two install steps, not a
// replacement, and installs nothing; a credentialed indexUrl fails preview
// with the command that moves the login into the secret.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, freePort, psDuring, REPO_ROOT, Sandbox, shutdownSandbox, sshOk, sshRun } from "../host/sandbox";
import { STANDIN_DIR, trustMachineCAs, UV_VERSION } from "../standin/fixtures";
import { fetchUvWheel, startIndex, StandinIndex, standinTls } from "../standin/index-server";
import { changesOf, ensureEngine, openStack, pathsHolding, removeStack, stackConfigFor } from "./engine";

jest.setTimeout(30 * 60 * 1000);

const USER = "ci-bot";
const TOKEN = `idxE2e-${Math.random().toString(36).slice(2, 14)}`;
const ROTATED = `idxE2eRot-${Math.random().toString(36).slice(2, 14)}`;
let sb: Sandbox;
let idx: StandinIndex;
let wheels: string;
let stack: Stack;
let port: number;
const log: string[] = [];

const config = (vllm: Record<string, unknown> = {}) =>
  stackConfigFor(
    sb,
    port,
    (c) => {
      const { findLinks: _f, ...rest } = c.vllm;
      c.vllm = { ...rest, noIndex: false, indexUrl: idx.url, ...vllm };
    },
    { relativeTo: REPO_ROOT },
  );
async function up(): Promise<Record<string, number>> {
  const r = await stack.up({ onOutput: (o) => log.push(o), signal: AbortSignal.timeout(15 * 60 * 1000) });
  return r.summary.resourceChanges as Record<string, number>;
}
async function preview(): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  await stack.preview({ onEvent: (e) => events.push(e), onOutput: (o) => log.push(o) });
  return events;
}
beforeAll(async () => {
  wheels = fs.mkdtempSync(path.join(os.tmpdir(), "pv-indexauth-e2e-wheels-"));
  fetchUvWheel(UV_VERSION, wheels);
  const r = spawnSync("python3", [path.join(STANDIN_DIR, "build-wheel.py"), "--version", "0.11.0", "--out", wheels], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build-wheel.py: ${r.stderr}`);
  const tls = standinTls();
  idx = await startIndex({ dir: wheels, user: USER, password: TOKEN, delayMs: 300, tls });
  sb = await bootSandbox("indexauth-e2e");
  port = await freePort();
  await trustMachineCAs(sb);
  fs.mkdirSync(path.join(sb.root, "usr/local/share/ca-certificates"), { recursive: true });
  fs.writeFileSync(path.join(sb.root, "usr/local/share/ca-certificates/pv-standin-index.crt"), tls.ca);
  await sshOk(sb, "update-ca-certificates >/dev/null 2>&1");
  stack = await openStack(`e2e-indexauth-${process.pid}`, config());
  await stack.setConfig("indexCredentials", { value: `${USER}:${TOKEN}`, secret: true });
});

afterAll(async () => {
  if (stack) await removeStack(stack).catch(() => undefined);
  if (sb) await shutdownSandbox(sb);
  if (idx) await idx.close();
  if (wheels) fs.rmSync(wheels, { recursive: true, force: true });
});

test("1. up installs uv and the stand-in from the index behind a login and serves; the login was in no argv on the host", async () => {
  const { ps: samples } = await psDuring(sb, up);
  expect(samples).toMatch(/uv pip install/); // the sampler saw the install
  expect(samples).not.toContain(TOKEN);
  expect(idx.requests).toEqual(expect.arrayContaining([{ path: "/simple/uv/", auth: "ok" }, { path: "/simple/vllm-standin/", auth: "ok" }, { path: "/files/vllm_standin-0.11.0-py3-none-any.whl", auth: "ok" }]));
  expect(idx.requests.filter((q) => q.auth !== "ok")).toEqual([]);
  const out = await stack.outputs();
  const res = await fetch(`${out.endpoint.value}/models`, { headers: { Authorization: `Bearer ${out.apiKey.value}` } });
  expect(res.status).toBe(200);
});

test("2. the login is in no state, engine output, journal or file the steps write", async () => {
  const exported = JSON.parse(execFileSync("pulumi", ["stack", "export", "--stack", stack.name], { cwd: REPO_ROOT, env: { ...process.env, ...ensureEngine() }, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }));
  expect(pathsHolding(exported, TOKEN)).toEqual([]);
  // the install steps hold it as a secret (ciphertext), not at all elsewhere
  const stdins = exported.deployment.resources.filter((r: any) => r.type === "command:remote:Command" && /uv-venv|vllm-install/.test(r.urn)).map((r: any) => r.inputs.stdin);
  expect(stdins).toHaveLength(2);
  for (const s of stdins) expect(s).toMatchObject({ ciphertext: expect.any(String) });
  expect(log.join("")).not.toContain(TOKEN);
  expect(await sshOk(sb, "journalctl --no-pager -o cat")).not.toContain(TOKEN);
  expect((await sshRun(sb, `grep -rlF -- '${TOKEN}' /var/lib/pulumi-vllm /opt/pulumi-vllm /etc/pulumi-vllm /etc/systemd/system /root/.cache 2>/dev/null`)).stdout).toBe("");
});

test("3. a rotated login: preview shows an update of uv-venv and vllm-install, no replacement; up installs nothing", async () => {
  idx.setLogin(USER, ROTATED);
  await stack.setConfig("indexCredentials", { value: `${USER}:${ROTATED}`, secret: true });
  const changes = changesOf(await preview()).sort();
  expect(changes).toEqual([expect.stringMatching(/^update \S*command:remote:Command::vllm-uv-venv$/), expect.stringMatching(/^update \S*command:remote:Command::vllm-vllm-install$/)]);
  const files = idx.requests.filter((q) => q.path.startsWith("/files/")).length;
  const pid = (await sshOk(sb, "systemctl show -p MainPID --value vllm.service")).trim();
  const summary = await up();
  expect(Object.keys(summary).filter((k) => k !== "same")).toEqual(["update"]);
  expect(summary.update).toBe(2);
  expect(idx.requests.filter((q) => q.path.startsWith("/files/")).length).toBe(files);
  expect((await sshOk(sb, "systemctl show -p MainPID --value vllm.service")).trim()).toBe(pid);
  const exported = execFileSync("pulumi", ["stack", "export", "--stack", stack.name], { cwd: REPO_ROOT, env: { ...process.env, ...ensureEngine() }, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  expect(exported).not.toContain(ROTATED);
});

test("4. a login inside vllm.indexUrl fails preview with the command that moves it into the secret, not echoing it", async () => {
  const host = new URL(idx.url).host;
  stack = await openStack(stack.name, config({ indexUrl: `https://${USER}:${ROTATED}@${host}/simple` }));
  let message = "";
  try {
    await preview();
  } catch (e) {
    message = String((e as Error).message);
  }
  expect(message).toContain(`vllm.indexUrl: holds credentials; a URL is kept in plain state and shows in \`ps\` on the host -> set it without them (https://${host}/simple) and run \`pulumi config set --secret indexCredentials '<user>:<password>'\``);
  expect(message).not.toContain(ROTATED);
  stack = await openStack(stack.name, config());
});
