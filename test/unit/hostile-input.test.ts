// Hostile input, table-driven: every config string that reaches a shell, a
// unit file, a batch script, an env file or argv, with each of the
// characters that mean something to one of them. Each value is either
// refused by the schema with `key: what is wrong -> what to do` (the value
// not echoed), or accepted and rendered inertly: the test asserts the exact
// rendered text. Nothing the plan accepts may make preview throw: every
// accepted config is also built into its Pulumi components (under mocks),
// which renders the unit, the batch script and every host step's command.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as yaml from "js-yaml";

const registered: { type: string; name: string; inputs: Record<string, any> }[] = [];
pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs });
      return { id: `${args.name}-id`, state: { ...args.inputs, stdout: "changed\n", stderr: "" } };
    },
    call: (args) => args.inputs,
  },
  "pulumi-vllm",
  "hostile",
  false,
);
const asyncErrors: unknown[] = [];
process.on("unhandledRejection", (e) => asyncErrors.push(e));

import { ConfigError } from "../../components/config/errors";
import { LoadedConfig, parseStackConfig } from "../../components/config/load";
import type { SingleStackConfig, SlurmStackConfig } from "../../components/config/schema";
import { terminalSafe } from "../../components/config/strings";
import { makePlan, Plan, PlanError } from "../../components/plan/plan";
import { shellQuote } from "../../components/plan/launch";
import { main } from "../../components/cli/main";
import { singleHostSteps } from "../../components/topologies/single-host";
import { slurmSteps } from "../../components/topologies/slurm-cluster";

const root = path.join(__dirname, "..", "..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pv-hostile-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const singleBase = (): Record<string, any> => ({
  topology: "single",
  connection: { host: "10.0.0.5", privateKeyPath: "~/.ssh/id", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Q" },
  hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 },
  model: { id: "Qwen/Qwen2.5-7B-Instruct" },
  serving: { maxModelLen: 8192 },
  vllm: { version: "0.11.0" },
  host: {},
  nccl: {},
});
const slurmBase = (): Record<string, any> => {
  const doc = yaml.load(fs.readFileSync(path.join(root, "Pulumi.hpc.yaml"), "utf8")) as { config: Record<string, unknown> };
  const v: Record<string, any> = { host: {} };
  for (const [k, val] of Object.entries(doc.config)) v[k.replace(/^pulumi-vllm:/, "")] = val;
  return v;
};

// ---- payloads ---------------------------------------------------------------

const BIG = "a".repeat(100_000);
const PAYLOADS: [name: string, make: (valid: string) => string][] = [
  ["single quote", (v) => `${v}'`],
  ["double quote", (v) => `${v}"`],
  ["command substitution", (v) => `${v}$(touch /tmp/pv-pwned)`],
  ["backticks", (v) => `${v}\`id\``],
  ["semicolon", (v) => `${v};id`],
  ["newline", (v) => `${v}\nid`],
  ["NUL", (v) => `${v}\0`],
  ["percent", (v) => `${v}%n`],
  ["leading dash", (v) => `-${v}`],
  ["dot-dot", (v) => `${v}/../x`],
  ["100 KB", (v) => `${v}${BIG}`],
  ["bidi", (v) => `${v}\u202Eevil`],
];

// ---- fields -----------------------------------------------------------------

interface Rendered {
  plan: Plan;
  /** host step commands by step name (create) */
  commands: Record<string, string>;
  unitText?: string;
  batchScript?: string;
  planText: string;
}

interface Field {
  /** the key as problems name it */
  key: string;
  topology: "single" | "slurm";
  valid: string;
  set: (v: Record<string, any>, value: string) => void;
  /** The field is a key name: its messages name it (quoted and escaped), which is not a value's echo. */
  keyEchoed?: boolean;
  /** For values the schema accepts: assert where and how the value is rendered. Absent: every hostile value must be refused. */
  inert?: (r: Rendered, value: string) => void;
}

/** POSIX single-quoting, written out independently of the code under test. */
const sq = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.split("'").join(`'\\''`)}'`);
const stepQuoted = (s: string) => `'${s.split("'").join(`'\\''`)}'`;
/** One systemd ExecStart word: double-quoted, \ and " escaped, % -> %%, $ -> $$. */
const execWord = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$")}"`;
/** One Environment= assignment: "NAME=value" with \ and " escaped and % -> %% ($ is not expanded there). */
const envAssignment = (name: string, s: string) => `"${name}=${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%")}"`;

const PROBLEM = /^(pulumi-vllm:)?[\w.:"<>+\\[\]-]+: .+ -> .+$/s;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** Parts of the payloads that must never come back in a message. */
const KEY_PROBLEM = /^[\w.]+\.(?:"(?:[^"\\]|\\.)*"|[\w-]+): .+ -> .+$/s;
const NEVER_ECHOED = ["pv-pwned", "\u202E", "`id`", "a".repeat(20), "\0", "\n"];

/** What bash makes of a word: the value must come back byte for byte. */
function bashValueOf(assignmentLine: string, name: string): string {
  const r = spawnSync("bash", ["-c", `${assignmentLine}\nprintf '%s' "$${name}"`], { encoding: "utf8", cwd: tmp });
  expect(r.status).toBe(0);
  return r.stdout;
}

const notInAnyCommand = (r: Rendered, value: string) => {
  for (const [step, cmd] of Object.entries(r.commands)) expect({ step, has: cmd.includes(value) }).toEqual({ step, has: false });
};

const FIELDS: Field[] = [
  // connection: reaches the SSH client (never a shell), but is checked as what it is
  { key: "connection.host", topology: "single", valid: "gpu1.example.org", set: (v, x) => (v.connection.host = x) },
  { key: "connection.user", topology: "single", valid: "alice", set: (v, x) => (v.connection.user = x) },
  { key: "connection.jump.host", topology: "single", valid: "bastion.example.org", set: (v, x) => (v.connection.jump = { host: x }) },
  { key: "connection.jump.user", topology: "single", valid: "alice", set: (v, x) => (v.connection.jump = { host: "b", user: x }) },
  {
    key: "connection.hostKey",
    topology: "single",
    valid: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Q comment",
    set: (v, x) => (v.connection.hostKey = x),
    inert: notInAnyCommand,
  },
  { key: "connection.privateKeyPath", topology: "single", valid: "keys/id", set: (v, x) => (v.connection.privateKeyPath = x), inert: notInAnyCommand },
  {
    key: "connection.hostKeyPath",
    topology: "single",
    valid: "keys/known_hosts",
    set: (v, x) => {
      delete v.connection.hostKey;
      v.connection.hostKeyPath = x;
    },
    inert: notInAnyCommand,
  },
  { key: "connection.jump.privateKeyPath", topology: "single", valid: "keys/jump", set: (v, x) => (v.connection.jump = { host: "b", privateKeyPath: x }), inert: notInAnyCommand },
  { key: "connection.jump.hostKey", topology: "single", valid: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Q j", set: (v, x) => (v.connection.jump = { host: "b", hostKey: x }), inert: notInAnyCommand },
  // hardware / model / serving
  {
    key: "hardware.gpuName",
    topology: "single",
    valid: "RTX 3090",
    set: (v, x) => (v.hardware.gpuName = x),
    inert: (r, x) => {
      expect(r.planText).toContain(`topology single, 1 x ${x} 24 GiB, `);
      notInAnyCommand(r, x);
    },
  },
  { key: "model.id", topology: "single", valid: "Qwen/Qwen2.5-7B-Instruct", set: (v, x) => (v.model.id = x) },
  { key: "model.revision", topology: "single", valid: "main", set: (v, x) => (v.model.revision = x) },
  {
    key: "model.configPath",
    topology: "single",
    valid: "configs/x.json",
    set: (v, x) => (v.model.configPath = x),
    // accepted values point at no file: the plan refuses them (checked below), nothing is rendered
  },
  { key: "serving.bindHost", topology: "single", valid: "10.0.0.5", set: (v, x) => (v.serving.bindHost = x) },
  {
    key: "serving.servedModelName",
    topology: "single",
    valid: "qwen-7b",
    set: (v, x) => (v.serving.servedModelName = x),
    inert: (r, x) => {
      const argv = r.plan.launch.argv;
      expect(argv[argv.indexOf("--served-model-name") + 1]).toBe(x);
      expect(r.unitText).toContain(` "--served-model-name" ${execWord(x)} `);
      expect(r.unitText).toContain(`Description=vLLM 0.11.0 serving ${x} (pulumi-vllm)\n`);
    },
  },
  { key: "serving.toolCallParser", topology: "single", valid: "hermes", set: (v, x) => (v.serving.toolCallParser = x) },
  {
    key: "serving.extraArgs.0",
    topology: "single",
    valid: "--seed=1",
    set: (v, x) => (v.serving.extraArgs = [x]),
    inert: (r, x) => {
      expect(r.plan.launch.argv[r.plan.launch.argv.length - 1]).toBe(x);
      expect(r.unitText).toMatch(new RegExp(`^ExecStart=.* ${escapeRe(execWord(x))}\n`, "m"));
      expect(r.commands["launch-unit"]).toContain(stepQuoted(r.unitText!));
    },
  },
  { key: "vllm.package", topology: "single", valid: "vllm=={version}", set: (v, x) => (v.vllm.package = x) },
  { key: "vllm.distName", topology: "single", valid: "vllm", set: (v, x) => (v.vllm.distName = x) },
  { key: "vllm.importName", topology: "single", valid: "vllm", set: (v, x) => (v.vllm.importName = x) },
  { key: "vllm.findLinks", topology: "single", valid: "/opt/wheels", set: (v, x) => (v.vllm.findLinks = x) },
  {
    key: "vllm.indexUrl",
    topology: "single",
    valid: "https://mirror.example.org/simple",
    set: (v, x) => (v.vllm.indexUrl = x),
    inert: (r, x) => {
      expect(r.commands["uv-venv"]).toContain(` PV_UV_INDEX_URL=${stepQuoted(x)} `);
      expect(r.commands["vllm-install"]).toContain(` PV_INDEX_URL=${stepQuoted(x)} `);
    },
  },
  // host
  { key: "host.venvPath", topology: "single", valid: "/opt/pv/venv", set: (v, x) => (v.host.venvPath = x) },
  { key: "host.cacheDir", topology: "single", valid: "/var/cache/pv", set: (v, x) => (v.host.cacheDir = x) },
  { key: "host.unitName", topology: "single", valid: "vllm.service", set: (v, x) => (v.host.unitName = x.endsWith(".service") ? x : `${x}.service`) },
  { key: "host.unitName", topology: "single", valid: "vllm.service", set: (v, x) => (v.host.unitName = x) },
  { key: "host.swap.path", topology: "single", valid: "/swapfile", set: (v, x) => (v.host.swap = { mode: "auto", path: x }) },
  {
    key: "host.earlyoom.avoid",
    topology: "single",
    valid: "^(sshd|bash)$",
    set: (v, x) => (v.host.earlyoom = { ...v.host.earlyoom, avoid: x }),
    inert: (r, x) => expect(r.commands.earlyoom).toContain(` PV_EARLYOOM_AVOID=${stepQuoted(x)} `),
  },
  {
    key: "host.earlyoom.prefer",
    topology: "single",
    valid: "^(vllm|python3)$",
    set: (v, x) => (v.host.earlyoom = { ...v.host.earlyoom, prefer: x }),
    inert: (r, x) => expect(r.commands.earlyoom).toContain(` PV_EARLYOOM_PREFER=${stepQuoted(x)} `),
  },
  { key: "host.extraPackages.0", topology: "single", valid: "nvtop", set: (v, x) => (v.host.extraPackages = [x]) },
  {
    key: "host.env.HOSTILE",
    topology: "single",
    valid: "value",
    set: (v, x) => (v.host.env = { HOSTILE: x }),
    inert: (r, x) => {
      expect(r.plan.launch.env.HOSTILE).toBe(x);
      expect(r.unitText).toContain(`\nEnvironment=${envAssignment("HOSTILE", x)}\n`);
    },
  },
  { key: "host.env", topology: "single", valid: "NAME", set: (v, x) => (v.host.env = { [x]: "1" }), keyEchoed: true },
  { key: "nccl.socketIfname", topology: "single", valid: "eth0", set: (v, x) => (v.nccl.socketIfname = x) },
  // slurm
  { key: "slurm.partition", topology: "slurm", valid: "capella", set: (v, x) => (v.slurm.partition = x) },
  { key: "slurm.account", topology: "slurm", valid: "p_scads", set: (v, x) => (v.slurm.account = x) },
  { key: "slurm.qos", topology: "slurm", valid: "normal", set: (v, x) => (v.slurm.qos = x) },
  { key: "slurm.jobName", topology: "slurm", valid: "pulumi-vllm", set: (v, x) => (v.slurm.jobName = x) },
  { key: "slurm.timeLimit", topology: "slurm", valid: "12:00:00", set: (v, x) => (v.slurm.timeLimit = x) },
  { key: "slurm.memPerGpu", topology: "slurm", valid: "64G", set: (v, x) => (v.slurm.memPerGpu = x) },
  {
    key: "slurm.modules.0",
    topology: "slurm",
    valid: "CUDA/12.4",
    set: (v, x) => (v.slurm.modules = [x]),
    inert: (r, x) => expect(r.batchScript).toContain(`\nmodule load ${sq(x)}\n`),
  },
  { key: "slurm.sharedVenvPath", topology: "slurm", valid: "/data/ws/venv", set: (v, x) => (v.slurm.sharedVenvPath = x) },
  { key: "slurm.sharedCacheDir", topology: "slurm", valid: "/data/ws/cache", set: (v, x) => (v.slurm.sharedCacheDir = x) },
  { key: "slurm.logDir", topology: "slurm", valid: "/data/ws/logs", set: (v, x) => (v.slurm.logDir = x) },
  { key: "slurm.secretsDir", topology: "slurm", valid: "/data/ws/secrets", set: (v, x) => (v.slurm.secretsDir = x) },
  {
    key: "slurm.extraSbatch.0",
    topology: "slurm",
    valid: "--constraint=a100",
    set: (v, x) => (v.slurm.extraSbatch = [x]),
    inert: (r, x) => expect(r.batchScript).toContain(`\n#SBATCH ${x}\n#`),
  },
  { key: "serving.servedModelName", topology: "slurm", valid: "maverick", set: (v, x) => (v.serving.servedModelName = x), inert: (r, x) => expect(r.batchScript).toContain(`serving ${x}.\n`) },
  {
    key: "host.env.HOSTILE",
    topology: "slurm",
    valid: "value",
    set: (v, x) => (v.host.env = { HOSTILE: x }),
    inert: (r, x) => {
      const line = `export HOSTILE=${sq(x)}`;
      expect(r.batchScript).toContain(`\n${line}\n`);
      expect(bashValueOf(line, "HOSTILE")).toBe(x);
    },
  },
  {
    key: "serving.extraArgs.0",
    topology: "slurm",
    valid: "--seed=1",
    set: (v, x) => (v.serving.extraArgs = [x]),
    inert: (r, x) => {
      const argvText = r.plan.launch.argv.map(sq).join(" ");
      expect(r.batchScript).toContain(` pv-launch ${argvText}\n`);
      const words = spawnSync("bash", ["-c", `set -- ${argvText}; printf '%s\\0' "$@"`], { encoding: "utf8", cwd: tmp }).stdout.split("\0");
      expect(words[words.length - 2]).toBe(x);
    },
  },
];

// ---- the harness ------------------------------------------------------------

function parse(v: Record<string, unknown>): { loaded?: LoadedConfig; problems?: string[] } {
  try {
    return { loaded: parseStackConfig(v, "hostile", new Set(["sshPrivateKey", "hfToken"])) };
  } catch (e) {
    if (e instanceof ConfigError) return { problems: e.problems };
    throw e;
  }
}

/** A command's step: the `pv-<step>` its script runs as (commands are named after their server). */
const stepOfCommand = (create: string): string => / pv-([a-z0-9-]+)$/.exec(create)?.[1] ?? create;

let instance = 0;
/** Build the stack's components under mocks, as preview would, and collect every host step's command. */
async function preview(loaded: LoadedConfig, plan: Plan): Promise<Omit<Rendered, "plan" | "planText">> {
  const from = registered.length;
  const name = `hostile${instance++}`;
  const connection = { host: "10.0.0.5" };
  const secrets = { VLLM_API_KEY: "k" };
  let unitText: string | undefined;
  let expected: number;
  // The server components' children, under a bare parent (the servers add the plan and the outputs around them).
  const parent = new pulumi.ComponentResource("test:index:Server", name);
  if (loaded.config.topology === "single") {
    const { launch } = singleHostSteps(parent, name, { config: loaded.config as SingleStackConfig, plan, connection, sudo: false, secrets, triggerKey: "k" });
    unitText = launch.unitText;
    expected = plan.steps.length; // each step's command, the readiness gate included
  } else {
    const job = slurmSteps(parent, name, { config: loaded.config as SlurmStackConfig, plan, connection, secrets });
    expected = job.weights ? 5 : 4;
  }
  const commands: Record<string, string> = {};
  for (let i = 0; i < 200 && Object.keys(commands).length < expected; i++) {
    await new Promise((r) => setTimeout(r, 5));
    for (const r of registered.slice(from)) if (r.type === "command:remote:Command") commands[stepOfCommand(r.inputs.create)] = r.inputs.create;
  }
  expect(Object.keys(commands)).toHaveLength(expected);
  return { commands, unitText, batchScript: plan.batchScript };
}

async function planText(v: Record<string, unknown>): Promise<{ code: number; out: string; err: string }> {
  const dir = fs.mkdtempSync(path.join(tmp, "stack-"));
  const config: Record<string, unknown> = { "pulumi-vllm:sshPrivateKey": { secure: "x" } };
  for (const [k, val] of Object.entries(v)) config[`pulumi-vllm:${k}`] = val;
  fs.writeFileSync(path.join(dir, "Pulumi.h.yaml"), yaml.dump({ config }));
  let out = "";
  let err = "";
  const code = await main(["plan", "--stack", "h"], { write: (s: string) => ((out += s), true) } as never, { write: (s: string) => ((err += s), true) } as never, dir);
  return { code, out, err };
}


const cases = FIELDS.flatMap((f) => PAYLOADS.map(([payload, make]) => [`${f.topology} ${f.key}`, payload, f, make(f.valid)] as const));

describe("hostile config values: refused with key: what -> fix, or accepted by a field that renders them inertly", () => {
  test.each(cases)("%s with %s", async (_field, payload, f, value) => {
    const v = f.topology === "single" ? singleBase() : slurmBase();
    f.set(v, value);
    const { loaded, problems } = parse(v);
    if (problems) {
      const mine = problems.filter((p) => p.startsWith(`${f.key}:`) || p.startsWith(`${f.key}.`));
      expect({ problems, mine: mine.length > 0 }).toEqual({ problems, mine: true });
      for (const p of problems) {
        expect(p).toMatch(f.keyEchoed ? KEY_PROBLEM : PROBLEM);
        // nothing a terminal would not show as itself, no echo of the hostile part
        expect(terminalSafe(p)).toBe(p);
        for (const never of f.keyEchoed ? ["\u202E", "\0", "\n"] : NEVER_ECHOED) expect(p).not.toContain(never);
        expect(p.length).toBeLessThan(1000);
      }
      return;
    }
    // Accepted: the field must say how it is rendered (checked, for real, per payload below) and the plan must take it.
    let plan: Plan;
    try {
      plan = makePlan(loaded!);
    } catch (e) {
      // only a configPath naming no file is left to the planner: same message format
      expect(e).toBeInstanceOf(PlanError);
      expect(f.key).toBe("model.configPath");
      for (const p of (e as PlanError).problems) expect(p).toMatch(PROBLEM);
      return;
    }
    expect({ field: f.key, payload, hasInertCheck: !!f.inert }).toEqual({ field: f.key, payload, hasInertCheck: true });
    expect(plan.problems).toEqual([]);
    const cli = await planText(v);
    expect({ code: cli.code, err: cli.err }).toEqual({ code: 0, err: "" });
  });
});

// Building the components under mocks takes most of a second, so the values each field accepts are
// rendered together: one stack per topology and payload, holding every accepted value at once.
const groups = (["single", "slurm"] as const).flatMap((topology) => PAYLOADS.map(([payload, make]) => [topology, payload, make] as const));

describe("what plan accepts, preview renders: exactly, inertly, and within the argument limit", () => {
  test.each(groups)("%s stack, every field that accepts the %s", async (topology, payload, make) => {
    const fields = FIELDS.filter((f) => f.topology === topology);
    const combined = topology === "single" ? singleBase() : slurmBase();
    const accepted: [Field, string][] = [];
    for (const f of fields) {
      const value = make(f.valid);
      const v = topology === "single" ? singleBase() : slurmBase();
      f.set(v, value);
      const { loaded } = parse(v);
      if (!loaded || f.key === "model.configPath") continue;
      f.set(combined, value);
      accepted.push([f, value]);
    }
    // A payload every field refuses leaves nothing to render (NUL, line breaks, bidi, 100 KB: see above).
    if (accepted.length === 0) return;
    const { loaded, problems } = parse(combined);
    expect(problems).toBeUndefined();
    const plan = makePlan(loaded!);
    expect(plan.problems).toEqual([]);
    const rendered = await preview(loaded!, plan);
    const cli = await planText(combined);
    expect({ code: cli.code, err: cli.err }).toEqual({ code: 0, err: "" });
    for (const [f, value] of accepted) f.inert!({ plan, ...rendered, planText: cli.out }, value);
    for (const [step, cmd] of Object.entries(rendered.commands)) {
      // one SSH command is one argument of the remote shell: Linux refuses one over 128 KiB
      expect({ step, fits: cmd.length < 128 * 1024 }).toEqual({ step, fits: true });
    }
    if (rendered.batchScript) expect(spawnSync("bash", ["-n"], { input: rendered.batchScript }).status).toBe(0);
    expect(asyncErrors).toEqual([]);
  });
});

describe("the largest values the schema accepts still fit one command", () => {
  test("every string at its limit: preview renders, and every host step's command stays under 128 KiB", async () => {
    const v = singleBase();
    const long = (n: number, ch = "a") => ch.repeat(n);
    v.serving = {
      maxModelLen: 2048,
      servedModelName: long(128),
      extraArgs: Array.from({ length: 4 }, (_, i) => `--x${i}=${long(1010, "'")}`),
    };
    v.host = {
      venvPath: `/${long(255)}`,
      cacheDir: `/${long(255, "b")}`,
      unitName: `${long(247, "u")}.service`,
      env: { A: long(4090, "'"), B: long(4000, '"') },
      earlyoom: { avoid: long(512, ";"), prefer: long(512, "|") },
    };
    v.model = { id: `${long(100, "o")}/${long(99, "n")}`, configPath: path.join(tmp, "big.json") };
    fs.writeFileSync(path.join(tmp, "big.json"), JSON.stringify({ num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 2, vocab_size: 100, max_position_embeddings: 4096 }));
    const { loaded, problems } = parse(v);
    expect(problems).toBeUndefined();
    const plan = makePlan(loaded!);
    expect(plan.problems).toEqual([]);
    const r = await preview(loaded!, plan);
    for (const [step, cmd] of Object.entries(r.commands)) expect({ step, length: cmd.length < 128 * 1024 }).toEqual({ step, length: true });
    expect(asyncErrors).toEqual([]);
  });
  test("extraArgs and host.env are limited in all, not only per value", () => {
    const v = singleBase();
    v.serving.extraArgs = Array.from({ length: 10 }, () => `--x=${"a".repeat(1000)}`);
    v.host.env = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, "a".repeat(4000)]));
    const p = parse(v).problems!.join("\n");
    expect(p).toMatch(/^serving.extraArgs: hold \d+ characters, more than the 4096 allowed in all -> /m);
    expect(p).toMatch(/^host.env: holds \d+ characters, more than the 8192 allowed in all -> /m);
  });
});

describe("a config.json the planner cannot use is refused by plan, never a crash or NaN", () => {
  const write = (name: string, text: string) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, text);
    return f;
  };
  test.each([
    ["JSON null", "null", /holds JSON null, not a config.json object -> /],
    ["a list", "[1, 2]", /holds a JSON list/],
    ["0 heads", JSON.stringify({ num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 0, vocab_size: 100 }), /"num_attention_heads" in .* is 0, not a whole number from 1 to/],
    ["a string layer count", JSON.stringify({ num_hidden_layers: "2", hidden_size: 64, num_attention_heads: 2, vocab_size: 100 }), /"num_hidden_layers" in .* is a string/],
    ["heads not dividing hidden", JSON.stringify({ num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 3, vocab_size: 100 }), /not a multiple of num_attention_heads/],
  ])("%s", async (_what, json, message) => {
    const f = write(`c-${_what.replace(/\W/g, "")}.json`, json);
    const v = singleBase();
    v.model = { id: "org/custom", configPath: f };
    const { loaded } = parse(v);
    expect(() => makePlan(loaded!)).toThrow(PlanError);
    try {
      makePlan(loaded!);
    } catch (e) {
      const p = (e as PlanError).problems;
      expect(p).toEqual([expect.stringMatching(message)]);
      expect(p[0]).toMatch(/^model.configPath: .* -> /);
      expect(p[0]).not.toMatch(/NaN|undefined/);
    }
    const cli = await planText(v);
    expect(cli.code).toBe(1);
    expect(cli.err).toMatch(message);
  });
});

describe("the plan never prints invisible characters raw", () => {
  test("terminalSafe escapes control, bidi and zero-width characters, keeps newlines and tabs", () => {
    expect(terminalSafe("a\u202Eb\u200Bc\u0007d\u0000e\tf\ng\u2066h\uFEFF")).toBe("a<U+202E>b<U+200B>c<U+0007>d<U+0000>e\tf\ng<U+2066>h<U+FEFF>");
  });
  test("a bidi character in a model's config.json (a parse error quotes it) reaches stderr escaped", async () => {
    const f = path.join(tmp, "bidi.json");
    fs.writeFileSync(f, '{"num_hidden_layers": 2, \u202E}');
    const v = singleBase();
    v.model = { id: "org/custom", configPath: f };
    const cli = await planText(v);
    expect(cli.code).toBe(1);
    expect(cli.err).toContain("model.configPath");
    expect(cli.err).not.toMatch(/[\u202E\u200B\u0000-\u0008]/);
  });
  test("a hostile key name is quoted and escaped in the message, not echoed raw", () => {
    const v = singleBase();
    v.host.env = { ["A\u202E\nB" + "x".repeat(100)]: "1" };
    const p = parse(v).problems!;
    expect(p).toEqual([expect.stringMatching(/^host\.env\."A<U\+202E>\\nBx+\.\.\.": holds a line break -> /)]);
  });
});

describe("accepted values reach nothing as code", () => {
  test("no hostile value accepted by the schema ends up unquoted in a unit, a batch script or a host step command", () => {
    // The inert checks above assert the exact text per field; here a marker file proves nothing ran.
    expect(fs.existsSync("/tmp/pv-pwned")).toBe(false);
  });
});

describe("shell words shown and run are the same text", () => {
  test.each([
    ["plain", "abc/def-1.2", "abc/def-1.2"],
    ["quotes and $()", `a'b"$(c)`, `'a'\\''b"$(c)'`],
    ["a newline", "a\nb", "$'a\\x0ab'"],
    ["bidi and a backslash", "a\u202Eb\\c'", "$'a\\u202eb\\\\c\\''"],
  ])("%s", (_what, value, quoted) => {
    expect(shellQuote(value)).toBe(quoted);
    expect(terminalSafe(quoted)).toBe(quoted);
    const r = spawnSync("bash", ["-c", `printf '%s' ${quoted}`], { encoding: "utf8", env: { LC_ALL: "C.UTF-8", PATH: process.env.PATH! } });
    expect(r.stdout).toBe(value);
  });
});
