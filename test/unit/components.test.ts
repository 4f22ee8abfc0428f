// VllmServer and VllmSlurmServer as a library user composes them, under Pulumi
// mocks: names, options reaching the commands, Input connection fields, the
// errors before anything is registered, and what a preview diff will show.
// (Aliases and replacements need the real engine: test/e2e/upgrade.test.ts.)
import * as pulumi from "@pulumi/pulumi";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  provider?: string;
}
const registered: Registered[] = [];
const requests: { type: string; name: string; dependencies: string[]; aliases: { name?: string; type?: string; noParent?: boolean; parentUrn?: string }[] }[] = [];

pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
      const state =
        args.type === "random:index/randomPassword:RandomPassword"
          ? { ...args.inputs, result: `key-of-${args.name}` }
          : args.type === "random:index/randomBytes:RandomBytes"
            ? { ...args.inputs, hex: `hex-of-${args.name}` }
          : args.type === "test:index:Vm"
            ? { publicIp: "203.0.113.7" }
            : {
                ...args.inputs,
                stdout: /pv-readiness$/.test(args.inputs.create ?? "")
                  ? "ready: http://x serves m (active, MainPID 1) after 1s\nunchanged\n"
                  : /pv-slurm-readiness$/.test(args.inputs.create ?? "")
                  ? SLURM_GATE_STDOUT
                : /pv-weights$/.test(args.inputs.create ?? "")
                    ? `commit=${COMMIT}\nbytes=15231233024\nchanged\n`
                    : "changed\n",
                stderr: "",
              };
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  },
  "pulumi-vllm",
  "libstack",
  false,
);
const monitor = pulumi.runtime.getMonitor() as any;
const register = monitor.registerResource.bind(monitor);
monitor.registerResource = (req: any, cb: any) => {
  requests.push({
    type: req.getType(),
    name: req.getName(),
    dependencies: req.getDependenciesList(),
    aliases: req.getAliasesList().map((a: any) => {
      const s = a.getSpec?.();
      return s ? { name: s.getName(), type: s.getType(), noParent: s.getNoparent(), parentUrn: s.getParenturn() } : {};
    }),
  });
  return register(req, cb);
};

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2s";
// What slurm-readiness prints once the job serves: vLLM's startup lines of every node's ranks from the job's log.
const SLURM_GATE_STDOUT = [
  "endpoint=http://gpu-01:8000/v1",
  "vllm: (Worker_PP0_TP0 pid=11) INFO 12-02 05:00:01 [gpu_model_runner.py:2653] Model loading took 17.2000 GiB and 3.000000 seconds",
  "vllm: (Worker_PP1_TP0 pid=12) INFO 12-02 05:00:01 [gpu_model_runner.py:2653] Model loading took 17.4500 GiB and 3.000000 seconds",
  "vllm: (Worker_PP0_TP0 pid=11) INFO 12-02 05:00:02 [gpu_worker.py:298] Available KV cache memory: 20.10 GiB",
  "vllm: (Worker_PP1_TP0 pid=12) INFO 12-02 05:00:02 [gpu_worker.py:298] Available KV cache memory: 19.36 GiB",
  "vllm: INFO 12-02 05:00:02 [kv_cache_utils.py:1087] GPU KV cache size: 140,960 tokens",
  "unchanged",
  "",
].join("\n");
const COMMIT = "a09a35458c702b33eeacc393d103063234e8bc28";
// Inputs that hold a secret arrive as { <sig>: ..., value } under mocks.
const plain = (v: any): any => (v && typeof v === "object" && "value" in v && Object.keys(v).some((k) => /^[0-9a-f]{32}$/.test(k)) ? v.value : v);
class Vm extends pulumi.CustomResource {
  declare readonly publicIp: pulumi.Output<string>;
  constructor(name: string) {
    super("test:index:Vm", name, { publicIp: undefined });
  }
}
const outputValue = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply(resolve));
const settle = () => new Promise((r) => setTimeout(r, 100));

type Lib = typeof import("../../src");
let lib: Lib;
beforeAll(async () => {
  lib = await import("../../src");
});

function args(over: Partial<import("../../src").VllmServerArgs> = {}): import("../../src").VllmServerArgs {
  return {
    connection: { host: "10.0.0.1", privateKey: "-----BEGIN KEY-----", hostKey: HOST_KEY },
    hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 },
    model: { id: "Qwen/Qwen2.5-7B-Instruct" },
    serving: { maxModelLen: 8192 },
    vllm: { version: "0.11.0" },
    ...over,
  };
}

const commandsOf = (server: string) => registered.filter((r) => r.type === "command:remote:Command" && r.name.startsWith(`${server}-`));

describe("two VllmServers in one program", () => {
  beforeAll(async () => {
    new lib.VllmServer("box-a", args());
    new lib.VllmServer("box-b", args({ connection: { host: "10.0.0.2", privateKey: "k", hostKey: HOST_KEY }, host: { unitName: "vllm-b.service" } }));
    await settle();
  });

  test("every resource has its own type+name (the URN): no collision", () => {
    const urns = registered.map((r) => `${r.type}::${r.name}`);
    expect(new Set(urns).size).toBe(urns.length);
    expect(commandsOf("box-a")).toHaveLength(8);
    expect(commandsOf("box-b")).toHaveLength(8);
  });

  test("each command goes to its own host, and is named after its component, aliased to the step name", () => {
    for (const c of commandsOf("box-b")) expect(plain(c.inputs.connection).host).toBe("10.0.0.2");
    const tool = requests.find((r) => r.type === "command:remote:Command" && r.name === "box-a-toolchain")!;
    expect(tool.aliases).toContainEqual(expect.objectContaining({ name: "toolchain" }));
    const server = requests.find((r) => r.name === "box-a" && r.type === "pulumi-vllm:index:VllmServer")!;
    expect(server.aliases).toContainEqual(expect.objectContaining({ type: "pulumi-vllm:topology:SingleHost" }));
    // only the 0.1.0 stack program's server ("vllm") aliases its key to the old top-level name
    const key = requests.find((r) => r.name === "box-a-api-key")!;
    expect(key.aliases).toEqual([]);
  });

  test("a generated API key per server, each a secret", async () => {
    expect(registered.filter((r) => r.type === "random:index/randomPassword:RandomPassword").map((r) => r.name)).toEqual(["box-a-api-key", "box-b-api-key"]);
  });
});

describe("Inputs, options and outputs", () => {
  test("connection.host from another resource: endpoint and tunnel are built from it", async () => {
    const vm = new Vm("vm");
    const ip = vm.publicIp;
    const s = new lib.VllmServer("from-vm", args({ connection: { host: ip, user: "ubuntu", privateKey: pulumi.secret("k"), hostKey: HOST_KEY }, serving: { bindHost: "0.0.0.0", port: 9000 } }), {
      dependsOn: [vm],
    });
    expect(await outputValue(s.endpoint)).toBe("http://203.0.113.7:9000/v1");
    expect(s.tunnel).toBeUndefined();
    await settle();
    const cmds = commandsOf("from-vm");
    expect(cmds.every((c) => plain(c.inputs.connection).host === "203.0.113.7" && plain(c.inputs.connection).user === "ubuntu")).toBe(true);
    // not root: sudo
    expect(cmds.every((c) => c.inputs.create.startsWith("sudo -n env "))).toBe(true);
    // dependsOn reaches the first step's command (children do not inherit it)
    const first = requests.find((r) => r.type === "command:remote:Command" && r.name === "from-vm-toolchain")!;
    expect(first.dependencies.some((u) => u.endsWith("::vm"))).toBe(true);
    expect(await outputValue(s.ready)).toMatch(/^ready: /);
  });

  test("a provider given to the server reaches every command", async () => {
    const command = await import("@pulumi/command");
    const prov = new command.Provider("cmd");
    new lib.VllmServer("with-provider", args(), { providers: [prov] });
    await settle();
    const cmds = commandsOf("with-provider");
    expect(cmds).toHaveLength(8);
    for (const c of cmds) expect(c.provider).toMatch(/::cmd::/);
  });

  test("outputs: servedModelName, unitName, tunnel through the ssh port and user, plan, apiKey secret", async () => {
    const s = new lib.VllmServer("outs", args({ connection: { host: "h1", port: 2200, user: "root", privateKey: "k", hostKey: HOST_KEY }, apiKey: "given-key" }));
    expect(await outputValue(s.servedModelName)).toBe("Qwen/Qwen2.5-7B-Instruct");
    expect(await outputValue(s.unitName)).toBe("vllm.service");
    expect(await outputValue(s.tunnel!)).toBe("ssh -N -L 8000:127.0.0.1:8000 -p 2200 root@h1");
    expect((await outputValue(s.plan)).maxModelLen).toBe(8192);
    expect(await outputValue(s.apiKey!)).toBe("given-key");
    expect(await (s.apiKey as any).isSecret).toBe(true);
    await settle();
    expect(registered.some((r) => r.name === "outs-api-key")).toBe(false);
  });
});

describe("readable previews", () => {
  let a: Registered[];
  let b: Registered[];
  beforeAll(async () => {
    new lib.VllmServer("len-a", args({ serving: { maxModelLen: 8192 } }));
    new lib.VllmServer("len-b", args({ serving: { maxModelLen: 4096 } }));
    await settle();
    a = commandsOf("len-a");
    b = commandsOf("len-b");
  });
  const byStep = (cs: Registered[], step: string) => cs.find((c) => c.inputs.create.endsWith(` pv-${step}`))!;

  test("a max-model-len change leaves every delete alone (the delete reads what create recorded)", () => {
    for (const step of ["toolchain", "swapfile", "earlyoom", "uv-venv", "vllm-install", "launch-unit", "readiness"]) {
      expect(byStep(a, step).inputs.delete).toBe(byStep(b, step).inputs.delete);
    }
    expect(byStep(a, "launch-unit").inputs.create).not.toBe(byStep(b, "launch-unit").inputs.create);
    const del = byStep(a, "launch-unit").inputs.delete as string;
    expect(del).toMatch(/^env PV_ACTION=delete PV_ENV_FILE='\/etc\/pulumi-vllm\/vllm.env' PV_UNIT_NAME='vllm.service' bash -c /);
  });

  test("the server and its launch unit record the setting and the flag as inputs (what --diff shows)", () => {
    const server = registered.find((r) => r.name === "len-b" && r.type === "pulumi-vllm:index:VllmServer")!;
    expect(server.inputs.serving.maxModelLen).toBe(4096);
    expect(server.inputs.connection).toBeUndefined();
    const launch = registered.find((r) => r.name === "len-b-launch")!;
    expect(launch.inputs.command).toContain("--max-model-len 4096");
    expect(launch.inputs.command[0]).toBe("/opt/pulumi-vllm/venv/bin/vllm serve Qwen/Qwen2.5-7B-Instruct");
  });
});

describe("errors come before anything is registered, as key: problem -> fix", () => {
  const attempt = (name: string, a: any) => {
    const before = registered.length;
    let err: unknown;
    try {
      new lib.VllmServer(name, a);
    } catch (e) {
      err = e;
    }
    return { err: err as pulumi.InputPropertiesError, registeredAfter: registered.length - before };
  };

  test("a model that does not fit: InputPropertiesError with the planner's message and property path", async () => {
    const { err, registeredAfter } = attempt("too-big", args({ model: { id: "Qwen/Qwen2.5-72B-Instruct" } }));
    await settle();
    expect(pulumi.InputPropertiesError.isInstance(err)).toBe(true);
    expect(err.message).toMatch(/^VllmServer too-big has 1 problem:\n {2}- serving: the weights .* do not fit in .* -> /);
    expect(err.errors[0].propertyPath).toBe("serving");
    expect(registeredAfter).toBe(0);
  });

  test("schema problems are all listed, with did-you-mean; no secret is echoed", () => {
    const bad = args({ serving: { maxModelLen: 8192, gpuMemoryUtilisation: 0.8 } as any, hardware: { gpuCount: 0, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 1 } });
    (bad.connection as any).privateKey = "SECRET-KEY-TEXT";
    const { err } = attempt("bad", { ...bad, modle: {} });
    expect(err.message).toContain("modle: unknown argument -> did you mean `model`?");
    const again = attempt("bad2", bad).err;
    expect(again.message).toContain("serving.gpuMemoryUtilisation: unknown key -> did you mean `gpuMemoryUtilization`?");
    expect(again.message).toContain("hardware.gpuCount: must be at least 1");
    expect(again.message).not.toContain("SECRET-KEY-TEXT");
    expect(again.errors.map((e) => e.propertyPath)).toEqual(expect.arrayContaining(["serving.gpuMemoryUtilisation", "hardware.gpuCount"]));
  });

  test("an Output where the planner needs a plain value names the field", () => {
    const { err } = attempt("plain", args({ serving: { maxModelLen: pulumi.output(4096) as any } }));
    expect(err.message).toContain("serving.maxModelLen: must be a plain value, not an Output");
  });

  test("no SSH key, or policy config without a key", () => {
    const { err } = attempt("nokey", args({ connection: { host: "h", hostKey: HOST_KEY }, serving: { apiKey: "config" } }));
    expect(err.message).toContain("connection.privateKey: no SSH key -> pass connection.privateKey");
    expect(err.message).toContain("apiKey: serving.apiKey is `config` but no apiKey was given");
  });

  test("planVllmServer is pure: a plan with problems, no resource", () => {
    const before = registered.length;
    const p = lib.planVllmServer(args({ model: { id: "Qwen/Qwen2.5-72B-Instruct" } }));
    expect(p.plan.fits).toBe(false);
    expect(p.plan.problems[0]).toMatch(/^serving: /);
    expect(lib.planVllmServer(args()).plan.launch.maxModelLen).toBe(8192);
    expect(registered.length).toBe(before);
  });
});

describe("VllmSlurmServer", () => {
  test("steps named after the server, aliased type, outputs from the job's facts", async () => {
    const s = new lib.VllmSlurmServer("hpc", {
      ...args({ serving: { maxModelLen: 8192, bindHost: "0.0.0.0" } }),
      slurm: { partition: "gpu", gpusPerNode: 1, sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs" },
    });
    await settle();
    expect(commandsOf("hpc").map((c) => c.name).sort()).toEqual(["hpc-job", "hpc-readiness", "hpc-uv-venv", "hpc-vllm-install", "hpc-weights"]);
    const req = requests.find((r) => r.name === "hpc" && r.type === "pulumi-vllm:index:VllmSlurmServer")!;
    expect(req.aliases).toContainEqual(expect.objectContaining({ type: "pulumi-vllm:topology:SlurmCluster" }));
    const job = commandsOf("hpc").find((c) => c.name === "hpc-job")!;
    const params = (cmd: string) => cmd.split(" bash -c ")[0];
    expect(params(job.inputs.delete)).not.toContain("PV_BATCH_SCRIPT");
    expect(params(job.inputs.create)).toContain("PV_BATCH_SCRIPT");
    expect(await outputValue(s.tunnel)).toMatch(/^ssh -N -L 8000:.*:8000 -p 22 root@10.0.0.1 {2}# then http:\/\/127.0.0.1:8000\/v1$/);
    expect(await outputValue(s.ready)).toBe("http://gpu-01:8000/v1");
  });

  test("measured: vLLM's startup figures the gate read from the job's log, over every rank (smallest KV memory, largest weights)", async () => {
    const s = new lib.VllmSlurmServer("hpc-measured", {
      ...args({ serving: { maxModelLen: 8192, bindHost: "0.0.0.0" } }),
      slurm: { partition: "gpu", gpusPerNode: 1, sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs" },
    });
    expect(await outputValue(s.measured)).toEqual({ weightsGiB: 17.45, availableKvGiB: 19.36, kvCacheTokens: 140960 });
  });
});

describe("the weights step", () => {
  const params = (cmd: string) => cmd.split(" bash -c ")[0];
  const depsOf = (name: string) => requests.find((r) => r.type === "command:remote:Command" && r.name === name)!.dependencies;

  test("between the install and the unit: the unit's HF_HOME, the token only on stdin, the commit an output; the unit runs offline", async () => {
    const s = new lib.VllmServer("wts", args({ hfToken: "hf_componentToken123", host: { cacheDir: "/data/hf", removeModelCache: true, env: { HF_ENDPOINT: "https://hub.example.org" } } }));
    await settle();
    const w = commandsOf("wts").find((c) => c.name === "wts-weights")!;
    const p = params(w.inputs.create);
    for (const x of ["PV_MODEL_ID='Qwen/Qwen2.5-7B-Instruct'", "PV_CACHE_DIR='/data/hf'", "PV_VENV_PATH='/opt/pulumi-vllm/venvs/0.11.0-py3.12'", "PV_REMOVE_CACHE='1'", "PV_HF_ENDPOINT='https://hub.example.org'"]) expect(p).toContain(x);
    expect(p).toMatch(/PV_CHECKPOINT_BYTES='1[0-9]{10}'/); // ~15 GB of bf16 weights
    expect(p).toMatch(/PV_STEP_TIMEOUT='[0-9]+'/);
    expect(w.inputs.create).not.toContain("hf_componentToken123");
    expect(plain(w.inputs.stdin)).toBe("HF_TOKEN=hf_componentToken123\n");
    // delete needs where the record is, not the model's size or the token
    expect(params(w.inputs.delete)).not.toContain("PV_CHECKPOINT_BYTES");
    expect(params(w.inputs.delete)).toContain("PV_REMOVE_CACHE='1'");
    const urn = (n: string) => expect.stringMatching(new RegExp(`::${n}$`));
    expect(depsOf("wts-weights")).toContainEqual(urn("wts-vllm-install"));
    expect(depsOf("wts-launch-unit")).toContainEqual(urn("wts-weights"));
    expect(await outputValue(s.modelCommit!)).toBe(COMMIT);
    const unit = commandsOf("wts").find((c) => c.name === "wts-launch-unit")!;
    expect(unit.inputs.create).toContain("HF_HUB_OFFLINE=1");
    expect(unit.inputs.create).toContain("HF_HOME=/data/hf");
  });

  test("none for model.download false (vLLM fetches, online) or a path on the host", async () => {
    const off = new lib.VllmServer("wts-off", args({ model: { id: "Qwen/Qwen2.5-7B-Instruct", download: false } }));
    const configPath = require("path").join(require("fs").mkdtempSync(require("path").join(require("os").tmpdir(), "pv-cfg-")), "config.json");
    require("fs").writeFileSync(
      configPath,
      JSON.stringify({ architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: 3584, intermediate_size: 18944, num_attention_heads: 28, num_key_value_heads: 4, num_hidden_layers: 28, vocab_size: 152064, max_position_embeddings: 32768, torch_dtype: "bfloat16" }),
    );
    new lib.VllmServer("wts-local", args({ model: { id: "/models/qwen", configPath } }));
    await settle();
    expect(commandsOf("wts-off").map((c) => c.name)).not.toContain("wts-off-weights");
    expect(commandsOf("wts-local").map((c) => c.name)).not.toContain("wts-local-weights");
    expect(off.modelCommit).toBeUndefined();
    expect(commandsOf("wts-off").find((c) => c.name === "wts-off-launch-unit")!.inputs.create).not.toContain("HF_HUB_OFFLINE");
  });

  test("SLURM: on the login node into the shared cache before the job is submitted; the job runs offline", async () => {
    const s = new lib.VllmSlurmServer("wts-hpc", {
      ...args({ serving: { maxModelLen: 8192, bindHost: "0.0.0.0" } }),
      slurm: { partition: "gpu", gpusPerNode: 1, sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs" },
    });
    await settle();
    const w = commandsOf("wts-hpc").find((c) => c.name === "wts-hpc-weights")!;
    expect(w.inputs.create).not.toMatch(/^sudo /);
    for (const x of ["PV_CACHE_DIR='/shared/cache/huggingface'", "PV_VENV_PATH='/shared/venv'", "PV_STATE_DIR='/shared/cache/state'"]) expect(params(w.inputs.create)).toContain(x);
    expect(depsOf("wts-hpc-job")).toContainEqual(expect.stringMatching(/::wts-hpc-weights$/));
    expect(commandsOf("wts-hpc").find((c) => c.name === "wts-hpc-job")!.inputs.create).toMatch(/HF_HUB_OFFLINE=1/);
    expect(await outputValue(s.modelCommit!)).toBe(COMMIT);
  });
});

describe("a package index that needs a login (indexCredentials)", () => {
  const CRED = "mirror-user:idxTok3n_s3cret/with@odd:chars";
  const MIRROR = "https://pypi.internal.example.org/simple";
  const params = (cmd: string) => cmd.split(" bash -c ")[0];
  const stepsOf = (server: string, ...names: string[]) => commandsOf(server).filter((c) => names.some((n) => c.name === `${server}-${n}`));

  test("reach uv-venv and vllm-install on stdin only: not in a command, a parameter or the trigger list; no other step gets them", async () => {
    new lib.VllmServer("idx", args({ vllm: { version: "0.11.0", indexUrl: MIRROR }, indexCredentials: CRED }));
    await settle();
    const both = stepsOf("idx", "uv-venv", "vllm-install");
    expect(both).toHaveLength(2);
    for (const c of both) {
      expect(plain(c.inputs.stdin)).toBe(`INDEX_CREDENTIALS=${CRED}\n`);
      // a secret input: the state keeps it encrypted
      expect(plain(c.inputs.stdin)).not.toBe(c.inputs.stdin);
      expect(params(c.inputs.create)).toContain(`'${MIRROR}'`);
    }
    for (const c of commandsOf("idx")) {
      for (const secretPart of [CRED, "idxTok3n_s3cret"]) {
        expect(c.inputs.create).not.toContain(secretPart);
        expect(c.inputs.delete).not.toContain(secretPart);
        expect(JSON.stringify(plain(c.inputs.triggers))).not.toContain(secretPart);
      }
    }
    for (const c of commandsOf("idx").filter((c) => !both.includes(c))) expect(JSON.stringify(plain(c.inputs.stdin) ?? "")).not.toContain("INDEX_CREDENTIALS");
  });

  test("adding or rotating them changes only stdin (an update that re-runs create), never a trigger (no replacement of the venv)", async () => {
    new lib.VllmServer("idx-none", args({ vllm: { version: "0.11.0", indexUrl: MIRROR } }));
    new lib.VllmServer("idx-rot", args({ vllm: { version: "0.11.0", indexUrl: MIRROR }, indexCredentials: "mirror-user:rotated-token" }));
    await settle();
    for (const step of ["uv-venv", "vllm-install"]) {
      const [none, a, b] = ["idx-none", "idx", "idx-rot"].map((s) => stepsOf(s, step)[0].inputs);
      expect(none.stdin).toBeUndefined();
      expect(plain(a.triggers)).toEqual(plain(none.triggers));
      expect(plain(b.triggers)).toEqual(plain(none.triggers));
      expect(a.create.replace(/idx-?[a-z]*/g, "")).toBe(none.create.replace(/idx-?[a-z]*/g, ""));
    }
  });

  test("on SLURM too: the login node's uv-venv and vllm-install get them on stdin", async () => {
    new lib.VllmSlurmServer("idx-hpc", {
      ...args({ serving: { maxModelLen: 8192, bindHost: "0.0.0.0" }, vllm: { version: "0.11.0", indexUrl: MIRROR }, indexCredentials: CRED }),
      slurm: { partition: "gpu", gpusPerNode: 1, sharedVenvPath: "/shared/venv", sharedCacheDir: "/shared/cache", logDir: "/shared/logs" },
    });
    await settle();
    const both = stepsOf("idx-hpc", "uv-venv", "vllm-install");
    expect(both).toHaveLength(2);
    for (const c of both) expect(plain(c.inputs.stdin)).toBe(`INDEX_CREDENTIALS=${CRED}\n`);
    for (const c of commandsOf("idx-hpc")) expect(c.inputs.create).not.toContain("idxTok3n_s3cret");
  });

  test("refused before anything is registered: a value that is not user:password, or credentials for PyPI itself", () => {
    const bad = (over: Partial<import("../../src").VllmServerArgs>) => {
      try {
        new lib.VllmServer(`idx-bad-${Math.random().toString(36).slice(2)}`, args(over));
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    };
    const noColon = bad({ vllm: { version: "0.11.0", indexUrl: MIRROR }, indexCredentials: "justAtokenValue42" });
    expect(noColon).toMatch(/indexCredentials: is not user:password -> .*pulumi config set --secret indexCredentials/);
    expect(noColon).not.toContain("justAtokenValue42");
    expect(bad({ indexCredentials: CRED })).toMatch(/indexCredentials: .*vllm\.indexUrl is https:\/\/pypi\.org\/simple.* -> set vllm\.indexUrl to your mirror/);
  });
});
