// The weights step on SLURM through the real engine: it runs on the login
// node (which reaches the Hub; the compute nodes have no route out), downloads
// a gated model from the Hugging Face Hub stand-in into the shared cache with
// the token from the stack's secret, before the job is submitted; the job runs
// with HF_HUB_OFFLINE=1 and the stand-in starts only if the files are there.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { Stack } from "@pulumi/pulumi/automation";
import { bootCluster, loginOk, loginRun, reapOrphanClusters, shutdownCluster, SlurmCluster } from "./cluster";
import { openStack, removeStack } from "../e2e/engine";
import { STANDIN_DIR, writeHubRepo } from "../standin/fixtures";
import { startStandinHub, StandinHub } from "../standin/hub";

jest.setTimeout(30 * 60 * 1000);

const MODEL = "meta-llama/Llama-3.1-8B-Instruct"; // gated on the Hub too
const TOKEN = `hf_slurmWeights${Math.random().toString(36).slice(2, 12)}`;
const PORT = 18124;
const RECORD = "/shared/standin-record.json";
let c: SlurmCluster;
let stack: Stack;
let hub: StandinHub;
let root: string;
const log: string[] = [];

function config(): Record<string, any> {
  return {
    topology: "slurm",
    connection: { host: c.host, port: c.port, user: c.user, privateKeyPath: c.privateKey, hostKeyPath: c.knownHosts },
    hardware: { gpuCount: 4, gpuMemoryGiB: 80, gpuName: "stand-in (no GPU)", interconnect: "nvlink", hostRamGiB: 512, freeDiskGiB: 1000 },
    model: { id: MODEL },
    serving: { tensorParallel: 4, maxModelLen: 8192, maxNumSeqs: 16, bindHost: "0.0.0.0", port: PORT },
    // huggingface_hub from PyPI (through the login node) with the stand-in; real vLLM brings it
    vllm: { version: "0.11.1", python: "3.11", package: "vllm-standin[hub]=={version}", distName: "vllm-standin", importName: "vllm_standin", findLinks: "/shared/wheels" },
    host: { readinessTimeoutMinutes: 4, env: { HF_ENDPOINT: hub.url, VLLM_STANDIN_RECORD: RECORD } },
    slurm: {
      partition: c.partition, account: c.account, timeLimit: "00:30:00", nodes: 1, gpusPerNode: 4, cpusPerTask: 1,
      sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs", pendingTimeoutMinutes: 2,
    },
  };
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pv-slurm-hub-"));
  writeHubRepo(root, MODEL, 1024 * 1024, 11);
  hub = await startStandinHub({ root, gated: { [MODEL]: TOKEN } });
  await reapOrphanClusters("weights");
  c = await bootCluster(`weights${process.pid}`);
  const cas = fs.existsSync("/usr/local/share/ca-certificates") ? fs.readdirSync("/usr/local/share/ca-certificates").filter((f) => f.endsWith(".crt")) : [];
  for (const f of cas) {
    await loginOk(c, `cat > /usr/local/share/ca-certificates/${f} && update-ca-certificates >/dev/null 2>&1`, { stdin: fs.readFileSync(path.join("/usr/local/share/ca-certificates", f), "utf8") });
  }
  const wheels = path.join(c.sharedHostDir, "wheels");
  fs.mkdirSync(wheels, { recursive: true });
  const r = spawnSync("python3", [path.join(STANDIN_DIR, "build-wheel.py"), "--version", "0.11.1", "--out", wheels], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  stack = await openStack(`slurm-weights-${process.pid}`, config());
  await stack.setConfig("hfToken", { value: TOKEN, secret: true });
});

afterAll(async () => {
  if (stack) await stack.destroy().catch(() => undefined);
  if (stack) await removeStack(stack).catch(() => undefined);
  if (c) await shutdownCluster(c);
  if (hub) await hub.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test("the login node downloads into the shared cache before the job; the job serves from it offline", async () => {
  await stack.up({ onOutput: (o) => log.push(o) });
  const commit = hub.commitOf(MODEL);
  const out = await stack.outputs();
  expect(out.modelCommit.value).toBe(commit);
  expect(log.join("")).toMatch(/weights: verified 3 files/);
  // the hub was asked with the token, from the login node (the only one with a route to it)
  expect(hub.requests.filter((q) => q.path.startsWith(`/${MODEL}/resolve/`) && q.authorized).length).toBeGreaterThan(0);
  const rec = JSON.parse(await loginOk(c, `cat ${RECORD}`));
  expect(rec.env.HF_HUB_OFFLINE).toBe("1");
  expect(rec.weights.snapshot).toBe(`/shared/cache/huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/${commit}`);
  expect(await loginOk(c, "cat /shared/cache/jobs/pulumi-vllm.sbatch")).toMatch(/HF_HUB_OFFLINE=1/);
  expect((await loginRun(c, `grep -rl ${TOKEN} /shared/cache/huggingface /shared/cache/state /shared/cache/jobs`)).stdout).toBe("");
  expect(log.join("")).not.toContain(TOKEN);
});
