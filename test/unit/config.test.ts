import { ConfigError, didYouMean } from "../../components/config/errors";
import { loadStackFile, parseStackConfig, decodeEngineConfig } from "../../components/config/load";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const base = () => ({
  topology: "single",
  connection: { host: "10.0.0.5", privateKeyPath: "~/.ssh/id", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Q" },
  hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 },
  model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
  vllm: { version: "0.11.0" },
});

function problems(values: Record<string, unknown>, secrets: string[] = []): string[] {
  try {
    parseStackConfig(values, "test", new Set(secrets as never[]));
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe("stack config schema", () => {
  test("a minimal single-host config parses and fills defaults", () => {
    const { config } = parseStackConfig(base(), "test");
    expect(config.serving.bindHost).toBe("127.0.0.1");
    expect(config.serving.port).toBe(8000);
    expect(config.serving.apiKey).toBe("generate");
    expect(config.host.unitName).toBe("vllm.service");
    expect(config.connection.port).toBe(22);
  });

  test("every problem is listed at once, each as `key: what -> fix`", () => {
    const v = base() as Record<string, any>;
    v.serving = { gpuMemoryUtilization: 1.5, port: 70000 };
    v.hardware.gpuCount = 0;
    const p = problems(v);
    expect(p.length).toBeGreaterThanOrEqual(3);
    for (const line of p) expect(line).toMatch(/^[\w.:-]+: .+ -> .+/);
    expect(p.join("\n")).toContain("serving.gpuMemoryUtilization");
    expect(p.join("\n")).toContain("serving.port");
    expect(p.join("\n")).toContain("hardware.gpuCount");
  });

  test("unknown keys are refused with a did-you-mean, at the top level and nested", () => {
    const v = base() as Record<string, any>;
    v.servng = { port: 1 };
    v.hardware.gpuMemoryGb = 24;
    const p = problems(v);
    expect(p.find((x) => x.startsWith("pulumi-vllm:servng"))).toMatch(/did you mean `pulumi-vllm:serving`/);
    expect(p.find((x) => x.startsWith("hardware.gpuMemoryGb"))).toMatch(/did you mean `gpuMemoryGiB`/);
  });

  test("a missing required key says to set it", () => {
    const v = base() as Record<string, any>;
    delete v.model;
    expect(problems(v)).toEqual([expect.stringMatching(/^model: is required -> set model/)]);
  });

  test("topology must be single or slurm", () => {
    const v = base() as Record<string, any>;
    v.topology = "kubernetes";
    expect(problems(v).join("\n")).toMatch(/topology: .*single.*slurm/);
  });

  test("an unpinned host key is refused unless explicitly accepted", () => {
    const v = base() as Record<string, any>;
    delete v.connection.hostKey;
    expect(problems(v).join("\n")).toMatch(/connection.hostKey: no host key is pinned -> .*ssh-keyscan/);
    v.connection.insecureSkipHostKeyCheck = true;
    expect(problems(v)).toEqual([]);
  });

  test("no SSH key at all is refused; the secret key counts", () => {
    const v = base() as Record<string, any>;
    delete v.connection.privateKeyPath;
    expect(problems(v).join("\n")).toMatch(/sshPrivateKey/);
    expect(problems(v, ["sshPrivateKey"])).toEqual([]);
  });

  test("TP x PP beyond the GPUs, tool choice without a parser, open unauthenticated server", () => {
    const v = base() as Record<string, any>;
    v.serving = { tensorParallel: 2, enableAutoToolChoice: true, apiKey: "none", bindHost: "0.0.0.0" };
    const p = problems(v).join("\n");
    expect(p).toMatch(/serving.tensorParallel: .*2 GPUs but only 1/);
    expect(p).toMatch(/serving.toolCallParser: .*-> set serving.toolCallParser/);
    expect(p).toMatch(/serving.apiKey: .*open to the network/);
  });

  test("no input value is echoed in an error (a secret pasted in the wrong key stays out of logs)", () => {
    const v = base() as Record<string, any>;
    v.connection.user = 12345;
    v.model.id = "";
    v.serving = { bindHost: { secretish: "hf_SUPERSECRETTOKEN" } };
    const p = problems(v).join("\n");
    expect(p).not.toContain("hf_SUPERSECRETTOKEN");
    expect(p).not.toContain("12345");
  });

  test("slurm topology needs the slurm block and a consistent GPU count", () => {
    const v = { ...base(), topology: "slurm" } as Record<string, any>;
    expect(problems(v).join("\n")).toMatch(/^slurm: is required/m);
    v.slurm = { partition: "gpu", gpusPerNode: 4, nodes: 2, sharedVenvPath: "/s/v", sharedCacheDir: "/s/c", logDir: "/s/l" };
    v.serving = { tensorParallel: 4 };
    const p = problems(v).join("\n");
    expect(p).toMatch(/hardware.gpuCount .* must equal slurm.gpusPerNode/);
    expect(p).toMatch(/a 2-node job must use all 8 GPUs/);
  });

  test("EarlyOOM regexes /bin/sh would expand are refused at preview, not on the host", () => {
    const v = base() as Record<string, any>;
    v.host = { earlyoom: { prefer: "python3\\.11", avoid: "$(reboot)" } };
    const p = problems(v).join("\n");
    expect(p).toMatch(/host.earlyoom.prefer: may not hold quotes, backslashes/);
    expect(p).toMatch(/host.earlyoom.avoid: may have `\$` only at the end/);
  });

  test("didYouMean finds near misses and not far ones", () => {
    expect(didYouMean("tensorparalel", ["tensorParallel", "pipelineParallel"])).toBe("tensorParallel");
    expect(didYouMean("zzz", ["tensorParallel"])).toBeUndefined();
  });
});

describe("reading stack files and engine config", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pv-cfg-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test("indexCredentials is a secret key: in clear in the stack file it is refused, unechoed", () => {
    const f = path.join(tmp, "Pulumi.idx.yaml");
    fs.writeFileSync(f, "config:\n  pulumi-vllm:indexCredentials: ci-bot:CLEARIDXTOKEN\n");
    let message = "";
    try {
      loadStackFile(f);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/pulumi-vllm:indexCredentials: stored in clear text .*-> .*pulumi config set --secret indexCredentials/);
    expect(message).not.toContain("CLEARIDXTOKEN");
  });

  test("secret keys must be encrypted in the stack file, and their value is not echoed", () => {
    const f = path.join(tmp, "Pulumi.bad.yaml");
    fs.writeFileSync(f, "config:\n  pulumi-vllm:hfToken: hf_CLEARTEXTTOKEN\n");
    expect(() => loadStackFile(f)).toThrow(/pulumi-vllm:hfToken: stored in clear text .*-> .*pulumi config set --secret hfToken/);
    try {
      loadStackFile(f);
    } catch (e) {
      expect((e as Error).message).not.toContain("hf_CLEARTEXTTOKEN");
    }
  });

  test("a missing stack file says which stacks exist", () => {
    expect(() => loadStackFile(path.join(tmp, "Pulumi.nope.yaml"))).toThrow(/no such stack file/);
  });

  test("engine config: JSON objects decoded, other projects ignored, secrets only noted", () => {
    const { values, secretsPresent } = decodeEngineConfig({
      "pulumi-vllm:topology": "single",
      "pulumi-vllm:serving": '{"port":9000}',
      "pulumi-vllm:hfToken": "hf_x",
      "aws:region": "us-east-1",
    });
    expect(values).toEqual({ topology: "single", serving: { port: 9000 } });
    expect([...secretsPresent]).toEqual(["hfToken"]);
  });
});
