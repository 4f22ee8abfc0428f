// Host tier: components/host/scripts/readiness.sh (the readiness gate) on a
// real systemd (Debian bookworm sandbox) over SSH, against the vllm-standin
// (test/standin: a stand-in for vLLM, which cannot run here) launched by
// launch-unit.sh with a renderUnit() unit.
import {
  bootSandbox, describeRun, diffSnapshots, fileTimer, freePort, hostSnapshot, runStep, Sandbox, shutdownSandbox, sshOk,
} from "./sandbox";
import {
  envFilePath, expectStep, installStandin, launch, launchEnv, readinessEnv, setupVenv, StandinUnitOpts, trustMachineCAs,
} from "../standin/fixtures";
import { measuredOfReadiness } from "../../components/plan/measured";

jest.setTimeout(600_000);
const timer = fileTimer("readiness.test.ts");
let sb: Sandbox;
let port: number;
const UNIT = "vllm-rd.service";
const rand = Math.random().toString(36).slice(2, 10);
const secrets = { VLLM_API_KEY: `sk-rd-${rand}-"$x"`, HF_TOKEN: `hf_rd${rand}Token` };
const OWNED = ["/etc/pulumi-vllm", "/var/lib/pulumi-vllm", `/etc/systemd/system/${UNIT}`];

const gate = (over: Record<string, string> = {}) =>
  runStep(sb, { step: "readiness", action: "create", env: readinessEnv({ unitName: UNIT, port }, over) });
const opts = (o: Partial<StandinUnitOpts> = {}): StandinUnitOpts => ({ unitName: UNIT, port, restartSec: 1, ...o });
function noSecretIn(text: string) {
  for (const v of Object.values(secrets)) expect(text).not.toContain(v);
}

beforeAll(async () => {
  sb = await bootSandbox("h3-rd");
  timer.mark("boot");
  await trustMachineCAs(sb);
  await setupVenv(sb);
  await installStandin(sb, "0.11.0");
  port = await freePort();
  timer.mark("venv + stand-in");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

test("waits through a slow start, reporting load/graph-capture progress from the journal, then passes", async () => {
  const o = opts({ environment: { VLLM_STANDIN_START_DELAY: "6", VLLM_STANDIN_SHARDS: "3" } });
  expectStep(await launch(sb, o, secrets), "changed");
  const snap = await hostSnapshot(sb, OWNED);
  const r = await gate();
  expectStep(r, "unchanged");
  const out = r.stdout.trim().split("\n");
  expect(out[out.length - 2]).toMatch(new RegExp(`^ready: http://127\\.0\\.0\\.1:${port} serves qwen-test \\(active/running, MainPID \\d+\\) after \\d+s$`));
  expect(r.ms).toBeGreaterThan(3000); // it really waited for the load
  expect(r.stderr).toMatch(/\[readiness \+\d+s\] .*Loading safetensors checkpoint shards: +33% Completed \| 1\/3/);
  expect(r.stderr).toMatch(/\[readiness \+\d+s\] .*Capturing CUDA graphs/);
  expect(r.stderr).toMatch(/\[readiness \+\d+s\] .*Application startup complete/);
  expect(r.stderr).toMatch(/\/health answers 200/);
  noSecretIn(r.stdout + r.stderr + r.command);
  // the gate changes nothing on the host
  expect(diffSnapshots(snap, await hostSnapshot(sb, OWNED))).toEqual([]);
  // once up, a second gate passes at once
  const again = await gate();
  expectStep(again, "unchanged");
  expect(again.ms).toBeLessThan(5000);
  timer.mark("slow start");
});

test("reports vLLM's own startup figures of this start (the stand-in's, in 0.11.0's formats) as `vllm:` lines: the stack's `measured`", async () => {
  const figures = { VLLM_STANDIN_WEIGHTS_GIB: "15.27", VLLM_STANDIN_KV_GIB: "19.36", VLLM_STANDIN_KV_TOKENS: "140960", VLLM_STANDIN_GRAPH_GIB: "2.44" };
  expectStep(await launch(sb, opts({ environment: figures }), secrets), "changed");
  const r = await gate();
  expectStep(r, "unchanged");
  expect(r.stdout).toMatch(/^vllm: .*\[gpu_worker\.py:298\] Available KV cache memory: 19\.36 GiB$/m);
  // the stand-in's default --max-model-len is 4096: 140960 / 4096 = 34.41x
  expect(measuredOfReadiness(r.stdout)).toEqual({ weightsGiB: 15.27, availableKvGiB: 19.36, kvCacheTokens: 140960, maxConcurrency: 34.41, maxConcurrencyTokens: 4096, cudaGraphGiB: 2.44 });
  // only this start's lines: a restart with other figures reports the new ones
  expectStep(await launch(sb, opts({ environment: { ...figures, VLLM_STANDIN_KV_GIB: "7.5" } }), secrets), "changed");
  expect(measuredOfReadiness((await gate()).stdout)?.availableKvGiB).toBe(7.5);
  timer.mark("measured");
});

test("tqdm-style progress (\\r redraws, one line in journald) is shown as text, with heartbeats meanwhile", async () => {
  const o = opts({ environment: { VLLM_STANDIN_START_DELAY: "6", VLLM_STANDIN_SHARDS: "3", VLLM_STANDIN_TQDM: "1" } });
  expectStep(await launch(sb, o, secrets), "changed");
  const r = await gate({ PV_HEARTBEAT_SECONDS: "1" });
  expectStep(r, "unchanged");
  expect(r.stderr).toMatch(/\[readiness \+\d+s\] Loading safetensors checkpoint shards: 100% Completed \| 3\/3/);
  expect(r.stderr).not.toMatch(/blob data/);
  expect(r.stderr).not.toContain("\r");
  expect(r.stderr).toMatch(/still waiting: vllm-rd\.service is active\/running \(MainPID \d+.*\), \/health not answering yet \(loading\)/);
});

test("a served model name that does not match fails at once, saying what is served", async () => {
  const r = await gate({ PV_SERVED_MODEL: "llama-8b" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/serves "qwen-test", not "llama-8b" \(check --served-model-name\)/);
  expect(r.ms).toBeLessThan(10_000);
});

test("a key the server does not accept fails at once without printing it", async () => {
  const file = envFilePath(UNIT);
  const orig = await sshOk(sb, `cat ${file}`);
  await sshOk(sb, `sed -i 's/^VLLM_API_KEY=.*/VLLM_API_KEY="sk-wrong-${rand}"/' ${file}`);
  try {
    const r = await gate();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\/v1\/models answered 401: the server does not accept the VLLM_API_KEY/);
    expect(r.stdout + r.stderr).not.toContain(`sk-wrong-${rand}`);
    noSecretIn(r.stdout + r.stderr);
  } finally {
    await sshOk(sb, `cat > ${file}`, { stdin: orig });
  }
});

test("times out with a clear message, printing a heartbeat while the start is silent", async () => {
  expectStep(await launch(sb, opts({ environment: { VLLM_STANDIN_START_DELAY: "60", VLLM_STANDIN_SHARDS: "2" } }), secrets), "changed");
  const r = await gate({ PV_TIMEOUT_SECONDS: "5", PV_HEARTBEAT_SECONDS: "2" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/still waiting: vllm-rd\.service is active\/running \(MainPID \d+\), \/health not answering yet \(loading\)/);
  expect(r.stderr).toMatch(/timed out after 5s: vllm-rd\.service is active\/running but http:\/\/127\.0\.0\.1:\d+ did not serve 'qwen-test'/);
  expect(r.stderr).toMatch(/last 40 journal lines of vllm-rd\.service \(secrets redacted\)/);
  expect(r.ms).toBeLessThan(20_000);
});

test("a server that crashes at once fails the gate fast with the journal tail, secrets redacted", async () => {
  // The stand-in crashes and (simulating a library that echoes a token)
  // prints both secrets into the journal: the gate must redact them.
  const o = opts({ environment: { VLLM_STANDIN_CRASH: "1", VLLM_STANDIN_LEAK_ENV: "HF_TOKEN,VLLM_API_KEY" } });
  const l = await launch(sb, o, secrets);
  expectStep(l, "changed");
  const r = await gate();
  expect(r.code).not.toBe(0);
  expect(r.ms).toBeLessThan(30_000);
  expect(r.stderr).toMatch(/ERROR: vllm-rd\.service is not ready: .*(crashed|exited|failed)/);
  expect(r.stderr).toMatch(/RuntimeError: vllm-standin: simulated crash/);
  expect(r.stderr).toMatch(/simulated leak by the stand-in: HF_TOKEN=\[REDACTED\] VLLM_API_KEY=\[REDACTED\]/);
  noSecretIn(r.stdout + r.stderr);
  // the journal itself does hold them: the redaction did real work
  const journal = await sshOk(sb, `journalctl -u ${UNIT} --no-pager -o cat`);
  expect(journal).toContain(secrets.HF_TOKEN);
  timer.mark("crash");
});

test("a flag the pinned vLLM removed fails the gate with argparse's error in the tail", async () => {
  await installStandin(sb, "0.18.0");
  expectStep(await launch(sb, opts({ extraArgs: ["--swap-space", "4"] }), secrets), "changed");
  const r = await gate();
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/vllm: error: unrecognized arguments: --swap-space 4/);
  // the same flags on a release that still had it come up
  await installStandin(sb, "0.11.0");
  // (its crash loop may have hit the start limit meanwhile: reset it, as launch-unit does)
  await sshOk(sb, `systemctl reset-failed ${UNIT}; systemctl restart ${UNIT}`);
  const ok = await gate();
  if (ok.code !== 0) throw new Error(describeRun(ok));
  expectStep(ok, "unchanged");
});

test("a unit that does not exist is a clear error; delete is a no-op", async () => {
  const r = await runStep(sb, { step: "readiness", action: "create", env: readinessEnv({ unitName: "nope.service", port }) });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/unit nope\.service is not loaded .*run the launch-unit step first/);
  const d = await runStep(sb, { step: "readiness", action: "delete", env: readinessEnv({ unitName: UNIT, port }) });
  expectStep(d, "unchanged");
  expectStep(await runStep(sb, { step: "launch-unit", action: "delete", env: launchEnv(opts()) }), "changed");
});
