// The stack program's shape under Pulumi mocks: which resources index.ts
// makes for a single-host stack (through VllmServer), what their commands
// carry, and that secrets stay secret. (Provisioning itself is proven on a real host: test/host, test/e2e.)
import { createHash, createHmac } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

const API_KEY = "mock-api-key-0123456789abcdefghijklmnopqrstu";
const HF_TOKEN = "hf_mockTokenValue0123456789";
const TRIGGER_KEY = "6b65792d6f662d7468652d737461636b2d30313233343536373839616263646566";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
}
const registered: Registered[] = [];

pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state =
        args.type === "random:index/randomPassword:RandomPassword"
          ? { ...args.inputs, result: API_KEY }
          : args.type === "random:index/randomBytes:RandomBytes"
            ? { ...args.inputs, hex: TRIGGER_KEY }
            : { ...args.inputs, stdout: "changed\n", stderr: "" };
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  },
  "pulumi-vllm",
  "mockstack",
  false,
);

// The mock monitor sees each registration's dependencies: record them by resource name.
const dependencies: Record<string, string[]> = {};
const monitor = pulumi.runtime.getMonitor() as any;
const register = monitor.registerResource.bind(monitor);
monitor.registerResource = (req: any, cb: any) => {
  dependencies[req.getName()] = req.getDependenciesList().map((urn: string) => urn.split("::").pop());
  return register(req, cb);
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pv-mock-"));
fs.writeFileSync(path.join(tmp, "id_test"), "-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n");

function setConfig(extra: Record<string, string> = {}) {
  const cfg = {
    "pulumi-vllm:topology": "single",
    "pulumi-vllm:connection": JSON.stringify({ host: "10.1.2.3", port: 2222, user: "root", privateKeyPath: path.join(tmp, "id_test"), hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2s" }),
    "pulumi-vllm:hardware": JSON.stringify({ gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 }),
    "pulumi-vllm:model": JSON.stringify({ id: "openai/gpt-oss-20b" }),
    "pulumi-vllm:serving": JSON.stringify({ maxModelLen: 16384 }),
    "pulumi-vllm:vllm": JSON.stringify({ version: "0.11.0", python: "3.11" }),
    "pulumi-vllm:hfToken": HF_TOKEN,
    ...extra,
  };
  pulumi.runtime.setAllConfig(cfg, ["pulumi-vllm:hfToken"]);
}

// Inputs that hold a secret arrive as { <sig>: ..., value } under mocks.
const plain = (v: any): any => (v && typeof v === "object" && "value" in v && Object.keys(v).some((k) => /^[0-9a-f]{32}$/.test(k)) ? v.value : v);
const outputValue = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply(resolve));
const isSecret = (o: pulumi.Output<unknown>): Promise<boolean> => (o as any).isSecret as Promise<boolean>;

describe("index.ts for a single-host stack", () => {
  let program: Record<string, any>;
  beforeAll(async () => {
    setConfig();
    // index.ts exports a promise of its outputs: the Hub fetch runs while the config loads.
    const mod: any = await import("../../index");
    program = await (mod.default ?? mod);
    await outputValue(program.apiKey);
    await new Promise((r) => setTimeout(r, 200));
  }, 60_000);
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // each command is named after its step component: <server>-<step>, the launch unit's two under <server>-launch
  const stepOf = (name: string) => name.replace(/^vllm-(launch-)?/, "").replace(/^unit$/, "launch-unit");
  const commands = () => registered.filter((r) => r.type === "command:remote:Command").map((r) => ({ ...r, name: stepOf(r.name) }));

  test("one component and one remote command per host step, plus the launch unit's readiness gate", () => {
    const types = registered.map((r) => r.type);
    for (const t of ["Toolchain", "Swapfile", "EarlyOom", "UvVenv", "VllmInstall", "Weights", "LaunchUnit"]) expect(types).toContain(`pulumi-vllm:host:${t}`);
    expect(types).toContain("pulumi-vllm:index:VllmServer");
    expect(registered.filter((r) => r.type === "command:remote:Command").map((c) => c.name).sort()).toEqual([
      "vllm-earlyoom",
      "vllm-launch-readiness",
      "vllm-launch-unit",
      "vllm-swapfile",
      "vllm-toolchain",
      "vllm-uv-venv",
      "vllm-vllm-install",
      "vllm-weights",
    ]);
  });

  test("each step's command waits for the steps before it", () => {
    const deps = (step: string) => (Object.entries(dependencies).find(([n, d]) => stepOf(n) === step && d.length) ?? [, []])[1]!.map(stepOf);
    expect(deps("swapfile")).toContain("toolchain");
    expect(deps("earlyoom")).toContain("swapfile");
    expect(deps("uv-venv")).toContain("toolchain");
    expect(deps("vllm-install")).toContain("uv-venv");
    expect(deps("weights")).toContain("vllm-install");
    expect(deps("launch-unit")).toEqual(expect.arrayContaining(["vllm-install", "weights", "swapfile", "earlyoom"]));
    expect(deps("readiness")).toContain("launch-unit");
  });

  test("each command runs its script with PV_* parameters, has a delete, the script hash as trigger, no SSH setenv", () => {
    for (const c of commands()) {
      expect(c.inputs.create).toMatch(new RegExp(`^env PV_ACTION=create .* bash -c '.*' pv-${c.name}$`, "s"));
      expect(c.inputs.delete).toMatch(new RegExp(`^env PV_ACTION=delete .* pv-${c.name}$`, "s"));
      expect(plain(c.inputs.triggers)[0]).toMatch(/^[0-9a-f]{64}$/);
      expect(c.inputs.environment).toBeUndefined();
      expect(plain(c.inputs.connection).privateKey).toContain("mock");
      // the private key is a secret input
      expect(plain(c.inputs.connection)).not.toBe(c.inputs.connection);
      expect(c.inputs.addPreviousOutputInEnv).toBe(false);
      expect(plain(c.inputs.connection)).toMatchObject({ host: "10.1.2.3", port: 2222, user: "root", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2s" });
    }
  });

  test("the plan reaches the steps: swap size, vLLM version, the launch flags in the unit", () => {
    const byName = Object.fromEntries(commands().map((c) => [c.name, c.inputs]));
    expect(byName["vllm-install"].create).toContain("PV_PACKAGE='vllm==0.11.0'");
    // versioned venvs: uv alone, then vLLM into a venv of its own that the unit's venvPath links to
    expect(byName["uv-venv"].create).toContain("PV_UV_ONLY='1'");
    expect(byName["uv-venv"].create).not.toContain("PV_VENV_PATH=");
    expect(byName["vllm-install"].create).toContain("PV_VENV_PATH='/opt/pulumi-vllm/venvs/0.11.0-py3.11'");
    expect(byName["vllm-install"].create).toContain("PV_KEEP_VENVS='2'");
    expect(byName["launch-unit"].create).toContain("PV_VENV_LINK='/opt/pulumi-vllm/venv'");
    expect(byName["launch-unit"].create).toContain("PV_VENV_TARGET='/opt/pulumi-vllm/venvs/0.11.0-py3.11'");
    expect(byName["launch-unit"].create).toContain("ExecStart=\"/opt/pulumi-vllm/venv/bin/vllm\"");
    expect(byName["launch-unit"].create).toContain("--max-model-len");
    expect(byName["launch-unit"].create).toContain("16384");
    expect(byName.readiness.create).toContain("PV_BASE_URL='http://127.0.0.1:8000'");
    // the gate re-runs when the unit changes
    expect(byName.readiness.triggers).toContain(byName["launch-unit"].create);
    // not secret-wrapped: the gate's diff stays readable
    expect(Array.isArray(byName.readiness.triggers)).toBe(true);
  });

  test("secrets: API key and HF token only on the launch unit's stdin (the token also on the weights step's), never in a command string", () => {
    for (const c of commands()) {
      expect(c.inputs.create).not.toContain(API_KEY);
      expect(c.inputs.create).not.toContain(HF_TOKEN);
      expect(c.inputs.delete).not.toContain(API_KEY);
    }
    const unit = commands().find((c) => c.name === "launch-unit")!;
    expect(plain(unit.inputs.stdin)).toBe(`HF_TOKEN=${HF_TOKEN}\nVLLM_API_KEY=${API_KEY}\n`);
    const weights = commands().find((c) => c.name === "weights")!;
    expect(plain(weights.inputs.stdin)).toBe(`HF_TOKEN=${HF_TOKEN}\n`);
    for (const c of commands().filter((c) => !["launch-unit", "readiness", "weights"].includes(c.name))) expect(c.inputs.stdin).toBeUndefined();
  });

  test("the secrets' digest in the gate's triggers is keyed by the stack's random key: no state holds a plain sha256 of a secret", () => {
    const key = registered.find((r) => r.type === "random:index/randomBytes:RandomBytes")!;
    expect(key.name).toBe("vllm-trigger-key");
    expect(key.inputs.length).toBe(32);
    const stdin = `HF_TOKEN=${HF_TOKEN}\nVLLM_API_KEY=${API_KEY}\n`;
    const gate = commands().find((c) => c.name === "readiness")!;
    expect(gate.inputs.triggers).toContain(createHmac("sha256", TRIGGER_KEY).update(stdin).digest("hex"));
    // what a plain hash would give anyone who guesses a secret (or its stdin line) to check against
    const guessable = [stdin, API_KEY, HF_TOKEN, `VLLM_API_KEY=${API_KEY}\n`, `HF_TOKEN=${HF_TOKEN}\n`].map((x) => createHash("sha256").update(x).digest("hex"));
    const everything = JSON.stringify(registered.map((r) => r.inputs));
    for (const h of guessable) expect(everything).not.toContain(h);
    expect(everything).not.toContain(TRIGGER_KEY);
  });

  test("stack outputs: endpoint, served model, unit name, plan summary; the API key is a secret", async () => {
    expect(await outputValue(program.endpoint)).toBe("http://127.0.0.1:8000/v1");
    expect(await outputValue(program.servedModelName)).toBe("openai/gpt-oss-20b");
    expect(await outputValue(program.unitName)).toBe("vllm.service");
    expect((await outputValue<any>(program.plan)).maxModelLen).toBe(16384);
    expect(await outputValue(program.tunnel)).toBe("ssh -N -L 8000:127.0.0.1:8000 -p 2222 root@10.1.2.3");
    expect(await outputValue(program.apiKey)).toBe(API_KEY);
    expect(await isSecret(program.apiKey)).toBe(true);
    expect(JSON.stringify(await outputValue(program.plan))).not.toContain(API_KEY);
  });
});

describe("renames replace the step whose name changed (its delete removes the old unit or venv)", () => {
  test("the trigger is empty for the default name (stacks made before keep their triggers), the name otherwise", async () => {
    const { renameTrigger, DEFAULT_UNIT_NAME, DEFAULT_VENV_PATH } = await import("../../components/host/steps");
    const { Host } = await import("../../components/config/schema");
    const defaults = Host.parse({});
    expect(DEFAULT_UNIT_NAME).toBe(defaults.unitName);
    expect(DEFAULT_VENV_PATH).toBe(defaults.venvPath);
    expect(renameTrigger(DEFAULT_UNIT_NAME, DEFAULT_UNIT_NAME)).toEqual([]);
    expect(renameTrigger("other.service", DEFAULT_UNIT_NAME)).toEqual(["name:other.service"]);
  });
});
