// The vllm serve renderer, across vLLM versions.
import { parseStackConfig } from "../../components/config/load";
import { makePlan } from "../../components/plan/plan";
import { checkForVersion, compareVersions } from "../../components/plan/vllm-versions";

const cfg = (patch: Record<string, any> = {}, secrets: string[] = []) =>
  parseStackConfig(
    {
      topology: "single",
      connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
      hardware: { gpuCount: 1, gpuMemoryGiB: 80, hostRamGiB: 64, freeDiskGiB: 500 },
      model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
      vllm: { version: "0.11.0" },
      ...patch,
    },
    "t",
    new Set(secrets as never[]),
  );

describe("version table", () => {
  test("compareVersions orders x.y.z numerically", () => {
    expect(compareVersions("0.10.2", "0.9.9")).toBeGreaterThan(0);
    expect(compareVersions("0.11.0", "0.11.0")).toBe(0);
    expect(compareVersions("0.6.0", "0.11.0")).toBeLessThan(0);
  });
  test.each([
    ["--swap-space", "0.17.1", false],
    ["--swap-space", "0.18.0", true],
    ["--swap-space", "0.33.0", true],
    ["--disable-log-requests", "0.16.0", false],
    ["--disable-log-requests", "0.17.0", true],
    ["--disable-log-requests", "0.32.0", true],
    ["--disable-log-requests", "0.33.0", false], // back: --enable-x/--disable-x pairing
    ["--enable-log-requests", "0.10.0", true],
    ["--enable-log-requests", "0.10.1", false],
    ["--num-scheduler-steps", "0.10.0", false],
    ["--num-scheduler-steps", "0.10.1", true],
    ["--nnodes", "0.11.0", true],
    ["--nnodes", "0.11.1", false],
  ])("%s on vLLM %s refused: %s", (flag, version, refused) => {
    expect(checkForVersion(version, [{ flag, where: "serving.extraArgs" }], []).length > 0).toBe(refused);
  });
  test("VLLM_USE_V1 (seed 001) is refused from 0.11.1 on, with what to do", () => {
    const p = checkForVersion("0.11.1", [], [{ name: "VLLM_USE_V1", where: "host.env" }]);
    expect(p).toEqual([expect.stringMatching(/^host.env: VLLM_USE_V1 was removed in vLLM 0.11.1 .* -> use nothing: V1 is the only engine/)]);
    expect(checkForVersion("0.10.0", [], [{ name: "VLLM_USE_V1", where: "host.env" }])).toEqual([]);
  });
  test("a removed flag in extraArgs fails the plan with the fix", () => {
    const p = makePlan(cfg({ serving: { extraArgs: ["--swap-space", "1"] }, vllm: { version: "0.33.0" } }));
    expect(p.fits).toBe(false);
    expect(p.problems.join("\n")).toMatch(/serving.extraArgs: --swap-space was removed in vLLM 0.18.0 and vllm.version is 0.33.0 -> use nothing/);
    expect(makePlan(cfg({ serving: { extraArgs: ["--swap-space", "1"] }, vllm: { version: "0.15.0" } })).fits).toBe(true);
  });
  test("a flag that came back says so, and which pins take it", () => {
    expect(checkForVersion("0.20.0", [{ flag: "--disable-log-requests", where: "serving.extraArgs" }], [])).toEqual([
      expect.stringMatching(/^serving.extraArgs: --disable-log-requests was removed in vLLM 0.17.0 \(accepted again from 0.33.0\) and vllm.version is 0.20.0 -> use nothing .*\(or pin vLLM below 0.17.0 or 0.33.0\+\)/),
    ]);
  });
  test("values that exist only in some releases are refused with the config key (0.6.0's parser refuses both)", () => {
    const p = makePlan(cfg({ model: { id: "meta-llama/Llama-3.1-8B-Instruct", kvCacheDtype: "bfloat16" }, serving: { enableAutoToolChoice: true, toolCallParser: "llama3_json" }, vllm: { version: "0.6.0" } }));
    expect(p.problems).toEqual([
      expect.stringMatching(/^model.kvCacheDtype: --kv-cache-dtype bfloat16 needs vLLM 0.11.0 or newer and vllm.version is 0.6.0 -> pin vllm.version 0.11.0\+/),
      expect.stringMatching(/^serving.toolCallParser: --tool-call-parser llama3_json needs vLLM 0.6.3 or newer/),
    ]);
    expect(makePlan(cfg({ model: { id: "meta-llama/Llama-3.1-8B-Instruct", kvCacheDtype: "bfloat16" }, vllm: { version: "0.11.0" } })).fits).toBe(true);
  });
  test("flag=value form is checked too", () => {
    expect(checkForVersion("0.17.0", [{ flag: "--disable-log-requests=true", where: "x" }], [])).toHaveLength(1);
  });
});

describe("version-dependent planning", () => {
  test("bitsandbytes on 0.28.0+ (a plugin since) fails with the fix; 0.27 is fine", () => {
    const bnb = (version: string) => makePlan(cfg({ model: { id: "Qwen/Qwen2.5-14B-Instruct", quantization: "bitsandbytes" }, vllm: { version } }));
    expect(bnb("0.28.0").problems.join("\n")).toMatch(/model.quantization: bitsandbytes left vLLM's core in 0.28.0 .* -> pin vllm.version below 0.28.0/);
    expect(bnb("0.27.1").fits).toBe(true);
  });
  test("the 160 GiB scheduler tier exists from 0.28.0", () => {
    const big = (version: string) => makePlan(cfg({ hardware: { gpuCount: 1, gpuMemoryGiB: 180, hostRamGiB: 256, freeDiskGiB: 500 }, vllm: { version } })).launch.argv.join(" ");
    expect(big("0.28.0")).toContain("--max-num-batched-tokens 16384");
    expect(big("0.27.1")).toContain("--max-num-batched-tokens 8192");
  });
});

describe("launch rendering", () => {
  test("bitsandbytes brings --load-format bitsandbytes up to 0.8.1 only (later releases set it themselves)", () => {
    const argv = (version: string) => makePlan(cfg({ model: { id: "meta-llama/Llama-3.1-8B-Instruct", quantization: "bitsandbytes" }, vllm: { version } })).launch.argv.join(" ");
    expect(argv("0.6.0")).toContain("--quantization bitsandbytes --load-format bitsandbytes");
    expect(argv("0.8.1")).toContain("--load-format bitsandbytes");
    expect(argv("0.8.2")).not.toContain("--load-format");
  });
  test("argv carries no secret; the key and token are named for the environment file", () => {
    const p = makePlan(cfg({}, ["hfToken"]));
    expect(p.launch.secretEnv).toEqual(["VLLM_API_KEY", "HF_TOKEN"]);
    expect(p.launch.argv.join(" ")).not.toMatch(/api-key|hf_|hf-token/i);
    expect(Object.keys(p.launch.env)).not.toContain("VLLM_API_KEY");
    expect(Object.keys(p.launch.env)).not.toContain("HF_TOKEN");
  });
  test("no HF token configured: none expected; apiKey none: no key", () => {
    expect(makePlan(cfg({ serving: { apiKey: "none" } })).launch.secretEnv).toEqual([]);
  });
  test("defaults follow vLLM's scheduler defaults by GPU size", () => {
    const big = makePlan(cfg()).launch.argv.join(" ");
    expect(big).toContain("--max-num-seqs 1024 --max-num-batched-tokens 8192");
    const small = makePlan(cfg({ hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 } })).launch.argv.join(" ");
    expect(small).toContain("--max-num-seqs 256 --max-num-batched-tokens 2048");
  });
  test("maxModelLen auto renders a concrete number that fits", () => {
    const p = makePlan(cfg({ hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 } }));
    const i = p.launch.argv.indexOf("--max-model-len");
    const len = Number(p.launch.argv[i + 1]);
    expect(len).toBeGreaterThan(4096);
    expect(len).toBeLessThanOrEqual(p.gpu.maxModelLen);
  });
  test("host.env is merged and checked; NCCL stays off for a single NVLink box", () => {
    const p = makePlan(cfg({ host: { env: { VLLM_LOGGING_LEVEL: "DEBUG" } }, hardware: { gpuCount: 2, gpuMemoryGiB: 80, hostRamGiB: 64, freeDiskGiB: 500, interconnect: "nvlink" } }));
    expect(p.launch.env.VLLM_LOGGING_LEVEL).toBe("DEBUG");
    expect(p.launch.env.NCCL_P2P_DISABLE).toBeUndefined();
  });
});
