// topology: slurm through the real engine on a real SLURM (Debian's
// slurm-wlm + munge + slurmdbd): the venv and the stand-in on the shared
// filesystem via the login node, a 2-node job (native launcher: rank 0 serves,
// rank 1 runs headless) submitted by sbatch, the readiness gate through the
// login node, a config change that replaces the job, destroy that cancels it,
// and SLURM's own errors (bad partition, time limit) surfacing in `up`.
// vLLM is the stand-in (test/standin): no GPU here.
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { Stack } from "@pulumi/pulumi/automation";
import { bootCluster, loginOk, reapOrphanClusters, sacctState, shutdownCluster, SlurmCluster } from "./cluster";
import { changesOf, openStack, removeStack } from "../e2e/engine";
import { REPO_ROOT } from "../host/sandbox";
import { STANDIN_DIR } from "../standin/fixtures";

jest.setTimeout(30 * 60 * 1000);

let c: SlurmCluster;
let stack: Stack;
const log: string[] = [];
const PORT = 18123;
const FIGURES = { VLLM_STANDIN_WEIGHTS_GIB: "17.2,17.45", VLLM_STANDIN_KV_GIB: "20.1,19.36", VLLM_STANDIN_KV_TOKENS: "140960", VLLM_STANDIN_GRAPH_GIB: "2.1,2.3" };
// What the stack must export as `measured`: the largest weights and graphs (rank 1's), the smallest KV memory (rank 1's),
// the engine's KV tokens and concurrency (140960 / 8192 = 17.21x).
const MEASURED = { weightsGiB: 17.45, availableKvGiB: 19.36, kvCacheTokens: 140960, maxConcurrency: 17.21, maxConcurrencyTokens: 8192, cudaGraphGiB: 2.3 };

function config(patch: (x: Record<string, any>) => void = () => {}): Record<string, any> {
  const x: Record<string, any> = {
    topology: "slurm",
    connection: { host: c.host, port: c.port, user: c.user, privateKeyPath: c.privateKey, hostKeyPath: c.knownHosts },
    hardware: { gpuCount: 4, gpuMemoryGiB: 80, gpuName: "stand-in (no GPU)", interconnect: "nvlink", hostRamGiB: 512, freeDiskGiB: 1000 },
    // the stand-in loads no weights (the weights step has host and e2e tests against a Hub stand-in)
    model: { id: "meta-llama/Llama-3.1-70B-Instruct", download: false },
    serving: { tensorParallel: 4, pipelineParallel: 2, maxModelLen: 8192, maxNumSeqs: 16, bindHost: "0.0.0.0", port: PORT },
    vllm: { version: "0.11.1", python: "3.11", package: "vllm-standin=={version}", distName: "vllm-standin", importName: "vllm_standin", findLinks: "/shared/wheels", noIndex: true },
    // vLLM's startup figures the stand-in logs, per node rank (rank 0, rank 1): the gate reads both nodes' lines
    host: { readinessTimeoutMinutes: 4, env: FIGURES },
    slurm: {
      partition: c.partition, account: c.account, timeLimit: "00:30:00", nodes: 2, gpusPerNode: 4, cpusPerTask: 1,
      sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs", launcher: "native", pendingTimeoutMinutes: 2,
    },
  };
  patch(x);
  return x;
}

async function up() {
  return stack.up({ onOutput: (o) => log.push(o) });
}
async function squeue(): Promise<string> {
  return (await loginOk(c, "squeue -h -o '%i %T %j'")).trim();
}

beforeAll(async () => {
  // one name per run; clusters of interrupted runs (owner gone) are stopped first
  await reapOrphanClusters("pvtopo");
  c = await bootCluster(`pvtopo${process.pid}`);
  // what a real cluster would have: its site CAs (this machine's TLS proxy) and, here, the stand-in wheels
  const cas = fs.existsSync("/usr/local/share/ca-certificates") ? fs.readdirSync("/usr/local/share/ca-certificates").filter((f) => f.endsWith(".crt")) : [];
  for (const f of cas) {
    await loginOk(c, `cat > /usr/local/share/ca-certificates/${f} && update-ca-certificates >/dev/null 2>&1`, { stdin: fs.readFileSync(path.join("/usr/local/share/ca-certificates", f), "utf8") });
  }
  const wheels = path.join(c.sharedHostDir, "wheels");
  fs.mkdirSync(wheels, { recursive: true });
  for (const v of ["0.11.1"]) {
    const r = spawnSync("python3", [path.join(STANDIN_DIR, "build-wheel.py"), "--version", v, "--out", wheels], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
  }
  stack = await openStack(`slurm-${process.pid}`, config());
});

afterAll(async () => {
  if (stack) await stack.destroy().catch(() => undefined);
  if (stack) await removeStack(stack).catch(() => undefined);
  if (c) await shutdownCluster(c);
});

let firstJob = "";
test("up: venv + stand-in on the shared FS, a 2-node job, ready through the login node", async () => {
  await up();
  const out = await stack.outputs();
  firstJob = out.jobId.value;
  expect(firstJob).toMatch(/^\d+$/);
  expect(out.headNode.value).toBe(c.nodes[0].hostname);
  expect(out.endpoint.value).toBe(`http://${c.nodes[0].hostname}:${PORT}/v1`);
  expect(out.tunnel.value).toContain(`-L ${PORT}:${c.nodes[0].hostname}:${PORT}`);
  expect(await squeue()).toMatch(new RegExp(`^${firstJob} RUNNING pulumi-vllm$`));
  const jobLog = await loginOk(c, `cat /shared/logs/pulumi-vllm-${firstJob}.out`);
  // both nodes ran their role
  expect(jobLog).toMatch(new RegExp(`node rank 1 joined from ${c.nodes[1].hostname}`));
  expect(jobLog).toMatch(new RegExp(`headless worker node rank 1 on ${c.nodes[1].hostname} connected`));
  // vLLM's startup figures as the job logged them on both nodes, exported as the rig exports them
  expect(jobLog).toMatch(/^\(Worker_PP1_TP0 pid=\d+\) INFO .* Available KV cache memory: 19\.36 GiB$/m);
  expect(jobLog).toMatch(/^\(Worker_PP0_TP0 pid=\d+\) INFO .* Available KV cache memory: 20\.10 GiB$/m);
  expect(out.measured.value).toEqual(MEASURED);
  // the head answers the API with the key, through the login node
  const key = out.apiKey.value as string;
  const models = await loginOk(c, `curl -fsS -K - http://${c.nodes[0].hostname}:${PORT}/v1/models`, { stdin: `header = "Authorization: Bearer ${key}"\n` });
  expect(JSON.parse(models).data[0].id).toBe("meta-llama/Llama-3.1-70B-Instruct");
  // the secrets file is 0600 and the batch script holds no key
  expect(await loginOk(c, "stat -c %a /shared/cache/secrets/pulumi-vllm.env")).toBe("600\n");
  expect(await loginOk(c, "cat /shared/cache/jobs/pulumi-vllm.sbatch")).not.toContain(key);
});

test("a second up changes nothing and keeps the job", async () => {
  const r = await up();
  expect(Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same")).toEqual([]);
  expect((await stack.outputs()).jobId.value).toBe(firstJob);
});

test("day two on SLURM: status shows the running job (exit 0), smoke passes through the login node, logs is the job's log, redacted", async () => {
  const key = String((await stack.outputs()).apiKey.value);
  const cli = (args: string[]) => spawnSync(process.execPath, [path.join(REPO_ROOT, "bin", "pulumi-vllm.js"), ...args, "--stack", stack.name], { cwd: REPO_ROOT, env: process.env, encoding: "utf8" });
  const status = cli(["status", "--json"]);
  expect(status.status).toBe(0);
  const body = JSON.parse(status.stdout);
  expect(body.servers[0].steps.map((x: { step: string; state: string }) => `${x.step} ${x.state}`)).toEqual(["uv-venv ok", "vllm-install ok", "slurm-job ok", "slurm-readiness ok"]);
  // the job's node list as SLURM prints it (both nodes, compressed: name-n[1-2])
  expect(body.servers[0].job).toMatchObject({ id: firstJob, state: "RUNNING", node: (await loginOk(c, `squeue -h -j ${firstJob} -o %N`)).trim(), timeLeft: expect.stringMatching(/^\d+:\d+$/) });
  const smoke = cli(["smoke"]);
  expect(smoke.status).toBe(0);
  expect(smoke.stdout).toMatch(new RegExp(`through ssh -L \\d+:${c.nodes[0].hostname}:${PORT}`));
  expect(smoke.stdout).toMatch(/ok {2}chat: /);
  const logs = cli(["logs", "-n", "400"]);
  expect(logs.status).toBe(0);
  expect(logs.stdout).toMatch(/node rank 1 joined from/);
  // plan --stack shows the prediction next to what the job's vLLM reported
  const plan = cli(["plan"]);
  expect(plan.stdout).toMatch(/Plan vs measured \(vLLM's own figures at the stack's last start, busiest rank\):\n {2}weights GiB +plan [\d.]+ +measured 17\.45 /);
  expect(plan.stdout).toMatch(/\n {2}KV cache GiB +plan [\d.]+ +measured 19\.36 /);
  const planJson = JSON.parse(cli(["plan", "--json"]).stdout);
  expect(planJson.measured).toEqual(MEASURED);
  expect(planJson.planVsMeasured.map((r: { what: string }) => r.what)).toEqual(["weights GiB", "KV cache GiB", "KV cache tokens"]);
  expect(logs.stdout + logs.stderr + smoke.stdout + status.stdout + plan.stdout).not.toContain(key);
});

test("a config change replaces the job: the old one is cancelled, the new one runs", async () => {
  stack = await openStack(stack.name, config((x) => (x.serving.maxModelLen = 4096)));
  const events: any[] = [];
  await stack.preview({ onEvent: (e) => events.push(e) });
  expect(changesOf(events).join("\n")).toMatch(/^replace .*::vllm-job$/m);
  await up();
  const job = (await stack.outputs()).jobId.value;
  expect(job).not.toBe(firstJob);
  expect(await sacctState(c, firstJob)).toMatch(/CANCELLED/);
  expect(await squeue()).toMatch(new RegExp(`^${job} RUNNING`));
  expect(await loginOk(c, "cat /shared/cache/jobs/pulumi-vllm.sbatch")).toContain("--max-model-len 4096");
});

test("a secret holding $(...), backticks and quotes reaches the server verbatim and runs nothing, on any node", async () => {
  // What a careless or hostile key could hold: command substitutions (that would make files), quotes, $VAR, a backslash.
  const KEY = `sk-$(touch /tmp/pv-x)-\`touch /tmp/pv-y\`-"dq" 'sq' $HOME \\n; touch /tmp/pv-z #`;
  const RECORD = "/shared/cache/standin-record.json";
  stack = await openStack(stack.name, config((x) => {
    x.serving.maxModelLen = 4096;
    x.serving.apiKey = "config";
    x.host = { ...x.host, env: { VLLM_STANDIN_RECORD: RECORD } };
  }));
  await stack.setConfig("pulumi-vllm:apiKey", { value: KEY, secret: true });
  await up();
  const job = (await stack.outputs()).jobId.value;
  expect(await squeue()).toMatch(new RegExp(`^${job} RUNNING`));
  const rec = JSON.parse(await loginOk(c, `cat ${RECORD}`));
  expect(rec.env.VLLM_API_KEY).toBe(KEY);
  // the server enforces exactly that key
  const ok = await loginOk(c, `curl -s -o /dev/null -w '%{http_code}' -K - http://${c.nodes[0].hostname}:${PORT}/v1/models`, { stdin: `header = "Authorization: Bearer ${KEY.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"\n` });
  expect(ok.trim()).toBe("200");
  // nothing ran: not on the login node, not on either compute node (a step inside the running job)
  const probe = "for f in /tmp/pv-x /tmp/pv-y /tmp/pv-z; do if test -e $f; then echo \"$(hostname) $f\"; fi; done";
  expect((await loginOk(c, probe)).trim()).toBe("");
  const onNodes = await loginOk(c, `srun --jobid=${job} --overlap -N 2 --ntasks-per-node=1 bash -c '${probe}; echo checked $(hostname)'`);
  expect(onNodes.trim().split("\n").sort()).toEqual(c.nodes.map((n) => `checked ${n.hostname}`).sort());
  // and the key is in no file the job owner's neighbours could read but the 0600 secrets file
  expect(await loginOk(c, "cat /shared/cache/jobs/pulumi-vllm.sbatch")).not.toContain("pv-x");
  await stack.removeConfig("pulumi-vllm:apiKey");
  stack = await openStack(stack.name, config((x) => (x.serving.maxModelLen = 4096)));
});

test("destroy cancels the job: nothing in squeue, nothing running in sacct", async () => {
  const job = (await stack.outputs()).jobId.value;
  await stack.destroy({ onOutput: (o) => log.push(o) });
  expect(await squeue()).toBe("");
  expect(await sacctState(c, job)).toMatch(/CANCELLED/);
  expect((await loginOk(c, "sacct -n -X -a -s R -o JobID")).trim()).toBe("");
});

test("a partition that does not exist fails up with SLURM's error; the failed submission leaves no secrets file or batch script", async () => {
  stack = await openStack(stack.name, config((x) => (x.slurm.partition = "nosuchpartition")));
  await expect(up()).rejects.toThrow(/sbatch refused the job: .*[Ii]nvalid partition/);
  expect(await squeue()).toBe("");
  // upstream records nothing for the failed create, so no delete will ever run for it
  const left = await loginOk(c, "ls -A /shared/cache/secrets /shared/cache/jobs /shared/cache/state 2>/dev/null || true");
  expect(left).not.toMatch(/pulumi-vllm\.(env|sbatch|job)/);
});

test("a job that pends too long is cancelled and fails up with SLURM's reason", async () => {
  stack = await openStack(stack.name, config((x) => {
    x.slurm.extraSbatch = ["--begin=now+1hour"]; // holds the job: reason BeginTime
    x.slurm.pendingTimeoutMinutes = 0.2;
  }));
  await expect(up()).rejects.toThrow(/pended longer than 12 s \(SLURM reason: BeginTime\); cancelled it -> /);
  expect(await squeue()).toBe("");
});

test("a server that crashes at start fails up with the job's log tail, every secret of the job redacted", async () => {
  const KEY = `sk-crash-${process.pid}-key`;
  stack = await openStack(stack.name, config((x) => {
    x.serving.apiKey = "config";
    // the stand-in logs its startup, then exits 1 with the key in its error (a library echoing a token);
    // late enough that the job was seen running, so the readiness gate is the step that fails
    x.host = { readinessTimeoutMinutes: 4, env: { VLLM_STANDIN_START_DELAY: "15", VLLM_STANDIN_CRASH: "1", VLLM_STANDIN_LEAK_ENV: "VLLM_API_KEY" } };
  }));
  await stack.setConfig("pulumi-vllm:apiKey", { value: KEY, secret: true });
  const from = log.length;
  const err = await up().then(() => undefined, (e: Error) => e);
  await stack.removeConfig("pulumi-vllm:apiKey");
  expect(err?.message).toMatch(/slurm-readiness: job \d+ is (no longer in the queue|[A-Z]+) \(FAILED/);
  const shown = `${err?.message}\n${log.slice(from).join("")}`;
  expect(shown).toMatch(/simulated leak by the stand-in: VLLM_API_KEY=\[REDACTED\]/);
  expect(shown).not.toContain(KEY);
  expect(await squeue()).toBe("");
});

test("a job that hits its time limit fails up with SLURM's reason and the log tail", async () => {
  stack = await openStack(stack.name, config((x) => {
    x.slurm.timeLimit = "00:01:00";
    x.host = { readinessTimeoutMinutes: 4, env: { VLLM_STANDIN_START_DELAY: "600" } };
  }));
  await expect(up()).rejects.toThrow(/job \d+ is (no longer in the queue|[A-Z]+) \(.*TIMEOUT/);
  const tail = log.slice(-60).join("");
  expect(tail).toMatch(/last lines of \/shared\/logs\/pulumi-vllm-\d+\.out/);
});
