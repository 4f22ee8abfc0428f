// The stack program plans a model outside the catalog from the Hugging Face Hub while its config
// loads (the real Pulumi engine; the Hub is the stand-in test/standin/hub.ts, NOT the Hub). Preview
// only: the plan runs before any resource, so no host is needed.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { ensureEngine, writeStackFile } from "./engine";
import { REPO_ROOT } from "../host/sandbox";
import { startStandinHub, StandinHub } from "../standin/hub";

jest.setTimeout(900_000);

const NAME = "planner-hub";
const TOKEN = "hf_e2eGateToken0123456789abcdef";
let hub: StandinHub;
let root: string;
let stack: Stack;

function config(model: string): Record<string, unknown> {
  const rig = yaml.load(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.rig.yaml"), "utf8")) as { config: Record<string, unknown> };
  const c: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rig.config)) c[k.replace(/^pulumi-vllm:/, "")] = v;
  const key = path.join(root, "id_test");
  c.connection = { host: "127.0.0.1", port: 1, user: "root", privateKeyPath: key, insecureSkipHostKeyCheck: true };
  c.hardware = { gpuCount: 1, gpuMemoryGiB: 24, gpuName: "RTX 4090", hostRamGiB: 64, freeDiskGiB: 500 };
  c.model = { id: model };
  c.serving = { maxModelLen: 8192, apiKey: "none" };
  c.vllm = { version: "0.19.1" };
  return c;
}

async function preview(model: string): Promise<{ ok: boolean; text: string }> {
  writeStackFile(NAME, config(model));
  try {
    const r = await stack.preview();
    return { ok: true, text: r.stdout };
  } catch (e) {
    return { ok: false, text: String((e as Error).message) };
  }
}

beforeAll(async () => {
  const env = ensureEngine();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pv-planner-hube2e-"));
  fs.writeFileSync(path.join(root, "id_test"), "-----BEGIN OPENSSH PRIVATE KEY-----\nnot used by a preview\n-----END OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
  const repos = path.join(root, "repos");
  const example = path.join(REPO_ROOT, "test", "standin", "hub-example", "acme", "llama-like-8b");
  for (const id of ["acme/llama-like-8b", "acme/gated-8b"]) {
    fs.mkdirSync(path.join(repos, id), { recursive: true });
    for (const f of fs.readdirSync(example)) fs.copyFileSync(path.join(example, f), path.join(repos, id, f));
  }
  hub = await startStandinHub({ root: repos, gated: { "acme/gated-8b": TOKEN } });
  writeStackFile(NAME, config("acme/llama-like-8b"));
  stack = await LocalWorkspace.createOrSelectStack(
    { stackName: NAME, workDir: REPO_ROOT },
    { envVars: { ...env, HF_ENDPOINT: hub.url, PULUMI_VLLM_HUB_CACHE: path.join(root, "cache") } },
  );
});

afterAll(async () => {
  try {
    if (stack) await stack.workspace.removeStack(NAME, { force: true });
  } finally {
    fs.rmSync(path.join(REPO_ROOT, `Pulumi.${NAME}.yaml`), { force: true });
    if (hub) await hub.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("a model outside the catalog: config.json and the checkpoint size come from the Hub, the preview plans it", async () => {
  const r = await preview("acme/llama-like-8b");
  expect(r.text).not.toMatch(/error/i);
  expect(r.ok).toBe(true);
  expect(hub.requests.map((q) => q.path)).toEqual(expect.arrayContaining(["/api/models/acme/llama-like-8b/revision/main"]));
  expect(fs.existsSync(path.join(root, "cache", "acme", "llama-like-8b", hub.commitOf("acme/llama-like-8b"), "config.json"))).toBe(true);
});

test("a gated model: without hfToken the preview fails saying how to set it; with the secret it plans, the token reaching only the Hub", async () => {
  const denied = await preview("acme/gated-8b");
  expect(denied.ok).toBe(false);
  expect(denied.text).toMatch(/hfToken: acme\/gated-8b is gated or private on the Hub \(401 GatedRepo\) and no token was given -> .*pulumi config set --secret hfToken <token>/);
  await stack.setConfig("pulumi-vllm:hfToken", { value: TOKEN, secret: true });
  const ok = await preview("acme/gated-8b");
  expect(ok.ok).toBe(true);
  expect(ok.text).not.toContain(TOKEN);
  expect(hub.requests.some((q) => q.path === "/api/models/acme/gated-8b/revision/main" && q.authorized)).toBe(true);
});
