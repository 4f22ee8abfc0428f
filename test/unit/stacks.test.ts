// The seeds' setups, planned: each crash they hit must be known before launch.
import * as path from "path";
import { loadStackFile, parseStackConfig } from "../../components/config/load";
import { makePlan } from "../../components/plan/plan";

const root = path.join(__dirname, "..", "..");
const stack = (name: string) => loadStackFile(path.join(root, `Pulumi.${name}.yaml`));

const oneGpu = (model: Record<string, unknown>, serving: Record<string, unknown>) =>
  parseStackConfig(
    {
      topology: "single",
      connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
      hardware: { gpuCount: 1, gpuMemoryGiB: 24, gpuName: "RTX 3090", hostRamGiB: 64, freeDiskGiB: 500 },
      model,
      serving,
      vllm: { version: "0.11.0" },
    },
    "seed",
  );

describe("Pulumi.rig.yaml: seed 000/001's rig (8 GPUs on x1 risers, 16 GB RAM, 72B GPTQ-Int8, TP 8)", () => {
  const plan = makePlan(stack("rig"));
  // The seed ran this at 0.85 with CUDA graphs on a V1 release that still had VLLM_USE_V1 and
  // --swap-space (0.8-0.10), where CUDA graphs live outside vLLM's budget. From 0.20.0 vLLM charges
  // them to the budget: on 12 GiB cards at 0.85 the KV cache left is 0-0.7 GiB, and the plan (which
  // counts the low end) says so. The stack as shipped runs eager at 0.88 instead.
  const seedSettings = (version: string) => {
    const loaded = stack("rig");
    loaded.config.vllm.version = version;
    loaded.config.serving.gpuMemoryUtilization = 0.85;
    loaded.config.serving.enforceEager = false;
    return loaded;
  };
  const at = (version: string) => makePlan(seedSettings(version));
  test("the seed's settings fit at 0.85, max-model-len 4096, 32 seqs on a release that keeps CUDA graphs outside the budget", () => {
    const p = at("0.19.1");
    expect(p.problems).toEqual([]);
    expect(p.fits).toBe(true);
    expect(p.gpu.maxModelLen).toBeGreaterThanOrEqual(4096);
    expect(p.launch.argv).toEqual(expect.arrayContaining(["--tensor-parallel-size", "8", "--max-model-len", "4096", "--max-num-seqs", "32"]));
  });
  test("on 0.33.0 the seed's settings may not fit (CUDA graphs counted) and the plan says what does: eager mode and the length", () => {
    const p = at("0.33.0");
    expect(p.fits).toBe(false);
    expect(p.problems.join("\n")).toMatch(/may not fit .* KV cache left is 0-0\.\d+ GiB.*-> set serving.enforceEager: true and serving.maxModelLen: \d+/);
  });
  test("the stack as shipped (0.33.0, eager, 0.88) fits a 4096-token request with room outside the budget, without a warning", () => {
    expect(plan.problems).toEqual([]);
    expect(plan.warnings).toEqual([]);
    expect(plan.fits).toBe(true);
    expect(plan.gpu.maxModelLen).toBeGreaterThanOrEqual(4096);
    expect(plan.launch.argv).toEqual(expect.arrayContaining(["--enforce-eager", "--gpu-memory-utilization", "0.88"]));
  });
  test("says why 0.90 was risky", () => {
    const loaded = seedSettings("0.19.1");
    loaded.config.serving.gpuMemoryUtilization = 0.9;
    const p = makePlan(loaded);
    expect(p.warnings.join("\n")).toMatch(/gpuMemoryUtilization: 0.9 leaves 1.18 GiB .*CUDA graphs vLLM captures after the KV cache: risky.*-> 0.85 or lower/);
    expect(at("0.19.1").warnings).toEqual([]);
  });
  test("needs swap on 16 GB RAM: the size is derived (seed 001 saw 11-15 GB in use; seed 000 made 128 GB)", () => {
    expect(plan.host.peakRamGiB).toBeGreaterThan(16);
    expect(plan.host.swapGiB).toBeGreaterThanOrEqual(12);
    expect(plan.host.swapGiB).toBeLessThan(128);
    expect(plan.steps.map((s) => s.name)).toEqual(["toolchain", "swapfile", "earlyoom", "uv-venv", "vllm-install", "weights", "launch-unit", "readiness"]);
  });
  test("NCCL P2P and IB off on PCIe x1 risers; spawn workers", () => {
    expect(plan.launch.env).toMatchObject({ NCCL_P2P_DISABLE: "1", NCCL_IB_DISABLE: "1", VLLM_WORKER_MULTIPROC_METHOD: "spawn" });
  });
  test("with swap off it does not fit, and the message gives the swap size", () => {
    const loaded = stack("rig");
    loaded.config.host.swap = { mode: "off" };
    const p = makePlan(loaded);
    expect(p.fits).toBe(false);
    expect(p.problems.join("\n")).toMatch(/host.swap: loading needs ~[\d.]+ GiB .* -> set host.swap to \{mode: auto\} \(\d+ GiB\)/);
  });
});

describe("seed 003: Qwen2.5-14B on one 24 GB RTX 3090", () => {
  test("FP16 does not fit and the message says to quantize", () => {
    const p = makePlan(oneGpu({ id: "Qwen/Qwen2.5-14B-Instruct" }, { gpuMemoryUtilization: 0.9, maxModelLen: 8192 }));
    expect(p.fits).toBe(false);
    expect(p.gpu.weightsGiB).toBeGreaterThan(26);
    expect(p.problems.join("\n")).toMatch(/do not fit in 21.28 GiB .* -> quantize: .*bitsandbytes/);
  });
  test("bitsandbytes 4-bit fits, rendered as --quantization bitsandbytes (no --load-format: it follows)", () => {
    const p = makePlan(oneGpu({ id: "Qwen/Qwen2.5-14B-Instruct", quantization: "bitsandbytes" }, { gpuMemoryUtilization: 0.9, maxModelLen: 8192, enableAutoToolChoice: true, toolCallParser: "hermes" }));
    expect(p.fits).toBe(true);
    expect(p.gpu.weightsGiB).toBeLessThan(10);
    expect(p.launch.argv.join(" ")).toContain("--quantization bitsandbytes");
    expect(p.launch.argv).not.toContain("--load-format");
  });
});

describe("seed 002: gpt-oss-20b on one 24 GB card", () => {
  test("fits at its recommended 16K context, with room for a few requests", () => {
    const p = makePlan(oneGpu({ id: "openai/gpt-oss-20b" }, { maxModelLen: 16384, apiKey: "generate" }));
    expect(p.fits).toBe(true);
    expect(p.gpu.maxConcurrency).toBeGreaterThan(1);
    expect(p.launch.argv).not.toContain("--quantization"); // mxfp4 comes from the checkpoint
  });
  test("bound to 127.0.0.1 by default, the API key from the environment file", () => {
    const p = makePlan(oneGpu({ id: "openai/gpt-oss-20b" }, {}));
    expect(p.launch.argv.join(" ")).toContain("--host 127.0.0.1");
    expect(p.launch.secretEnv).toContain("VLLM_API_KEY");
    expect(p.launch.argv.join(" ")).not.toContain("--api-key");
  });
});

describe("Pulumi.hpc.yaml: seed 004's cluster, Llama-4-Maverick FP8 on 2 nodes x 4 H100", () => {
  const plan = makePlan(stack("hpc"));
  test("fits with TP 4 x PP 2 across the nodes", () => {
    expect(plan.problems).toEqual([]);
    expect(plan.topology).toBe("slurm");
    expect(plan.launch.argv).toEqual(expect.arrayContaining(["--tensor-parallel-size", "4", "--pipeline-parallel-size", "2"]));
    expect(plan.launch.env).toMatchObject({ NCCL_SOCKET_IFNAME: "ib0", NCCL_IB_TIMEOUT: "22" });
  });
  test("the same model on one node does not fit", () => {
    const loaded = stack("hpc");
    Object.assign((loaded.config as { slurm: object }).slurm, { nodes: 1 });
    Object.assign(loaded.config.serving, { pipelineParallel: 1 });
    expect(makePlan(loaded).fits).toBe(false);
  });
});
