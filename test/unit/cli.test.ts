import { execFileSync, spawnSync } from "child_process";
import * as path from "path";
import { main } from "../../components/cli/main";

const root = path.join(__dirname, "..", "..");

async function run(args: string[]) {
  let out = "";
  let err = "";
  const code = await main(args, { write: (s: string) => ((out += s), true) } as never, { write: (s: string) => ((err += s), true) } as never, root);
  return { code, out, err };
}

describe("pulumi-vllm plan", () => {
  test("--stack rig prints the memory table, host, command, environment and steps", async () => {
    const r = await run(["plan", "--stack", "rig"]);
    expect(r.code).toBe(0);
    for (const s of ["GPU memory, per GPU", "KV cache", "RAM peak (load)", "Command:", "vllm serve Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8", "Time (estimates):", "Host steps, in order:", "6. weights: hf download Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8", "8. readiness", "Verdict: fits."]) {
      expect(r.out).toContain(s);
    }
    expect(r.out).toMatch(/VLLM_API_KEY=\[secret/);
  });
  test("ad-hoc --json has fits, weightsGiB, kvCacheGiB, kvCacheTokens, maxModelLen; exit 2 when it does not fit", async () => {
    const r = await run(["plan", "--model", "Qwen/Qwen2.5-14B-Instruct", "--gpus", "1", "--gpu-memory-gib", "24", "--gpu-memory-utilization", "0.9", "--max-model-len", "8192", "--json"]);
    expect(r.code).toBe(2);
    const j = JSON.parse(r.out);
    expect(j.fits).toBe(false);
    expect(j.weightsGiB).toBeGreaterThan(26);
    expect(typeof j.kvCacheGiB).toBe("number");
    expect(typeof j.kvCacheTokens).toBe("number");
    expect(typeof j.maxModelLen).toBe("number");
    const q = JSON.parse((await run(["plan", "--model", "Qwen/Qwen2.5-14B-Instruct", "--gpus", "1", "--gpu-memory-gib", "24", "--max-model-len", "8192", "--quantization", "bitsandbytes", "--vllm-version", "0.27.1", "--json"])).out);
    expect(q.fits).toBe(true);
    expect(q.kvCacheTokens).toBeGreaterThan(8192);
  });
  test("bad input: unknown flag with did-you-mean, missing flags, non-numbers -> exit 1", async () => {
    expect(await run(["plan", "--gpu", "1"])).toMatchObject({ code: 1, err: expect.stringMatching(/--gpu: unknown flag -> did you mean --gpus\?/) });
    expect((await run(["plan", "--model", "x/y"])).err).toMatch(/--gpus: is required/);
    expect((await run(["plan", "--model", "x/y", "--gpus", "two", "--gpu-memory-gib", "24"])).err).toMatch(/--gpus: "two" is not a number/);
    // outside the catalog the Hub is asked; offline (never the real Hub in tests) the fix is a local config.json
    expect((await run(["plan", "--model", "x/y", "--gpus", "1", "--gpu-memory-gib", "24", "--offline"])).err).toMatch(/x\/y is not in the catalog nor in the Hub cache .* -> .*--model-config/);
    expect((await run(["plan", "--stack", "nope"])).err).toMatch(/no such stack file/);
  });
  test("the package bin runs as `npx pulumi-vllm` would", () => {
    const r = spawnSync(process.execPath, [path.join(root, "bin", "pulumi-vllm.js"), "plan", "--stack", "hpc", "--json"], { cwd: root, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).topology).toBe("slurm");
    expect(execFileSync("node", ["-e", "console.log(require('./package.json').bin['pulumi-vllm'])"], { cwd: root, encoding: "utf8" }).trim()).toBe("bin/pulumi-vllm.js");
  });
});
