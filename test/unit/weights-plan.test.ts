// The plan's side of the weights step: who downloads, the two time estimates
// (download; load + compile, what the readiness wait covers), the step line,
// HF_HUB_OFFLINE for the unit and the batch script, and the new config keys.
import { parseStackConfig } from "../../components/config/load";
import { makePlan } from "../../components/plan/plan";
import { planTimes } from "../../components/plan/times";
import { renderPlanText } from "../../components/cli/render";

const cfg = (patch: (c: Record<string, any>) => void = () => {}) => {
  const c: Record<string, any> = {
    topology: "single",
    connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
    hardware: { gpuCount: 1, gpuMemoryGiB: 80, hostRamGiB: 64, freeDiskGiB: 500, cpuCores: 8 },
    model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
    vllm: { version: "0.11.0" },
    serving: { maxModelLen: 8192 },
  };
  patch(c);
  return parseStackConfig(c, "t", new Set());
};
const slurm = (c: Record<string, any>) => {
  c.topology = "slurm";
  c.serving = { ...c.serving, bindHost: "0.0.0.0" };
  c.slurm = { partition: "gpu", gpusPerNode: 1, sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs" };
};

test("download time is the checkpoint over hardware.downloadMBps; load + compile is what the readiness wait covers", () => {
  const p = makePlan(cfg((c) => (c.hardware.downloadMBps = 100)));
  const bytes = p.gpu.checkpointGiB * 1024 ** 3;
  expect(p.times.download).toBe("step");
  expect(p.times.downloadMinutes).toBeCloseTo(bytes / 100e6 / 60, 1);
  expect(p.times.readinessMinutes).toBeCloseTo(p.times.loadMinutes + p.times.compileMinutes, 1);
  // half the bandwidth, twice the time; the step's own limit follows (at least an hour)
  const slow = makePlan(cfg((c) => (c.hardware.downloadMBps = 1)));
  expect(slow.times.downloadMinutes).toBeCloseTo(p.times.downloadMinutes * 100, -1);
  expect(slow.times.downloadTimeLimitMinutes).toBeGreaterThan(slow.times.downloadMinutes * 3);
  expect(p.times.downloadTimeLimitMinutes).toBe(60);
});

test("seed 001's rig: load + compile within its 75 min wait, the 28 + 15-20 min the seed saw", () => {
  const p = makePlan(
    cfg((c) => {
      c.hardware = { gpuCount: 8, gpuMemoryGiB: 24, hostRamGiB: 16, freeDiskGiB: 400, interconnect: "pcie-x1-riser", cpuCores: 2 };
      c.model = { id: "Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8" };
      c.serving = { tensorParallel: 8, maxModelLen: 4096 };
      c.host = { readinessTimeoutMinutes: 75 };
    }),
  );
  expect(p.times.loadMinutes).toBeGreaterThan(15);
  expect(p.times.loadMinutes).toBeLessThan(35);
  expect(p.times.compileMinutes).toBeGreaterThanOrEqual(10);
  expect(p.times.readinessMinutes).toBeLessThan(75);
  expect(p.warnings.join("\n")).not.toMatch(/readinessTimeoutMinutes/);
});

test("a readiness wait shorter than the estimate warns with a value; with model.download false it must cover vLLM's own download", () => {
  const short = makePlan(cfg((c) => (c.host = { readinessTimeoutMinutes: 1 })));
  expect(short.warnings.join("\n")).toMatch(/^host\.readinessTimeoutMinutes: 1 min may be too short: loading and compiling take ~[0-9.]+ min .* -> raise it to \d+$/m);
  const vllm = makePlan(cfg((c) => ((c.model.download = false), (c.hardware.downloadMBps = 1), (c.host = { readinessTimeoutMinutes: 60 }))));
  expect(vllm.times.download).toBe("vllm");
  expect(vllm.times.readinessMinutes).toBeGreaterThan(vllm.times.downloadMinutes);
  expect(vllm.warnings.join("\n")).toMatch(/vLLM downloads \(~[0-9.]+ min at 1 MB\/s, model\.download is false\)/);
});

test("the unit and the batch script run offline only when the weights step downloads", () => {
  expect(makePlan(cfg()).launch.env.HF_HUB_OFFLINE).toBe("1");
  expect(makePlan(cfg((c) => (c.model.download = false))).launch.env.HF_HUB_OFFLINE).toBeUndefined();
  const hpc = makePlan(cfg(slurm));
  expect(hpc.launch.env.HF_HOME).toBe("/shared/cache/huggingface");
  expect(hpc.batchScript).toMatch(/HF_HUB_OFFLINE=1/);
  expect(hpc.steps.map((s) => s.name)).toEqual(["uv-venv", "vllm-install", "weights", "job-secrets", "slurm-job", "readiness"]);
});

test("the weights step's line and the two estimates in the plan text; none for model.download false", () => {
  const p = makePlan(cfg((c) => ((c.model.revision = "v1.0"), (c.host = { removeModelCache: true }))));
  const w = p.steps.find((s) => s.name === "weights")!;
  expect(w.what).toMatch(/^hf download meta-llama\/Llama-3\.1-8B-Instruct at v1\.0 into \/var\/cache\/pulumi-vllm\/huggingface \(~[0-9.]+ GiB, ~[0-9.]+ min at 50 MB\/s; .*HF_HUB_OFFLINE=1; destroy removes what it downloaded$/);
  expect(p.steps.map((s) => s.name).indexOf("weights")).toBe(p.steps.map((s) => s.name).indexOf("vllm-install") + 1);
  const text = renderPlanText(p, cfg().config);
  expect(text).toMatch(/Time \(estimates\):\n {2}download +~[0-9.]+ min {2}\([0-9.]+ GiB at 50 MB\/s, hardware\.downloadMBps; the weights step, time limit 60 min\)\n {2}load \+ compile +~[0-9.]+ min/);
  expect(makePlan(cfg((c) => (c.model.download = false))).steps.map((s) => s.name)).not.toContain("weights");
  expect(planTimes(cfg((c) => (c.model = { id: "/models/x", configPath: undefined })).config, 10).download).toBe("local");
});

test("config: downloadMBps must be positive; download a boolean", () => {
  expect(() => cfg((c) => (c.hardware.downloadMBps = 0))).toThrow(/hardware\.downloadMBps: /);
  expect(() => cfg((c) => (c.model.download = "maybe"))).toThrow(/model\.download: /);
});
