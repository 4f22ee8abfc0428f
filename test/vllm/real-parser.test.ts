// Each release in test/vllm/releases.json, asked through its own `vllm serve`
// parser (test/vllm/probe.py): the flag table says what it says, every example
// stack and a matrix of plans render a command line it accepts with the values
// the planner meant, and the scheduler defaults the planner assumes are the
// release's. Needs the releases installed (scripts/ensure-vllm-releases.sh;
// `npm run test:vllm` runs both). No GPU: the probe forces vLLM's CPU platform.
import { schedulerDefaults } from "../../components/plan/memory";
import { planGpuForStack } from "../../components/plan/plan";
import { resolveModel } from "../../components/plan/catalog";
import history from "../../components/plan/data/vllm-flag-history.json";
import {
  BOGUS_VALUE,
  Case,
  caseOf,
  describeEntry,
  ENVS,
  exampleStacks,
  FLAGS,
  matrix,
  probe,
  ProbeAnswer,
  RELEASES,
  tableAccepts,
  valueRules,
} from "./real-vllm";
import { compareVersions } from "../../components/plan/vllm-versions";

/** Devices the scheduler defaults are compared on: each side of vLLM's 70 GiB / A100 / 160 GiB tests. */
const DEVICES = [
  { id: "H100 80GB", memoryGiB: 80, name: "NVIDIA H100 80GB HBM3" },
  { id: "A100 80GB", memoryGiB: 80, name: "NVIDIA A100-SXM4-80GB" },
  { id: "RTX 3090 24GB", memoryGiB: 24, name: "NVIDIA GeForce RTX 3090" },
  { id: "RTX 3060 12GB", memoryGiB: 12, name: "NVIDIA GeForce RTX 3060" },
  { id: "L40S 48GB", memoryGiB: 48, name: "NVIDIA L40S" },
  { id: "H200 141GB", memoryGiB: 141, name: "NVIDIA H200" },
  { id: "B200 180GB", memoryGiB: 180, name: "NVIDIA B200" },
];

/**
 * Where the planner's scheduler defaults and a release's knowingly differ
 * (components/plan/memory.ts schedulerDefaults is the planner's). Listed so
 * the tier stays green while it bites on any other difference, and fails when
 * one of these is fixed (then delete the line). Empty since the planner models
 * V0 (0.6.x: 256 on every GPU), which this tier first flagged.
 */
const KNOWN_DEFAULT_DIFFERENCES: Record<string, string> = {};

const stacks = exampleStacks();

/** What the plan meant, read back from the parsed namespace. */
function expectedNamespace(c: Case): Record<string, unknown> {
  const s = c.config.serving;
  // The scheduler sizes the planner planned with (vLLM's defaults for the release, GPU and, in V0, length).
  const m = c.config.model;
  const { input: sched } = planGpuForStack(c.config, resolveModel(m.id, m.configPath, m.paramsB));
  return {
    model_tag: c.config.model.id,
    tensor_parallel_size: s.tensorParallel,
    pipeline_parallel_size: s.pipelineParallel,
    max_model_len: c.plan.launch.maxModelLen,
    gpu_memory_utilization: s.gpuMemoryUtilization,
    max_num_seqs: sched.maxNumSeqs,
    max_num_batched_tokens: sched.maxNumBatchedTokens,
    served_model_name: [c.plan.launch.servedModelName],
    host: s.bindHost,
    port: s.port,
    kv_cache_dtype: c.config.model.kvCacheDtype,
    enforce_eager: s.enforceEager,
    enable_auto_tool_choice: s.enableAutoToolChoice,
    ...(s.toolCallParser ? { tool_call_parser: s.toolCallParser } : {}),
    // bitsandbytes needs the matching load format up to 0.8.1 (the table's --load-format entry).
    ...(c.config.model.quantization === "bitsandbytes" && compareVersions(c.config.vllm.version, "0.8.2") < 0 ? { load_format: "bitsandbytes" } : {}),
  };
}

function roleExpectations(c: Case, role: string): Record<string, unknown> {
  if (c.config.topology !== "slurm" || c.config.slurm.nodes === 1) return {};
  if (c.config.slurm.launcher === "ray") return { distributed_executor_backend: "ray" };
  const worker = role.startsWith("worker");
  return { nnodes: c.config.slurm.nodes, node_rank: worker ? 1 : 0, master_addr: "10.1.0.1", headless: worker };
}

describe.each(RELEASES)("vLLM %s, its own parser", (release) => {
  const cases: Case[] = [
    ...matrix(release).map(({ id, loaded }) => caseOf(`plan: ${id}`, loaded)),
    ...stacks.filter((s) => s.version === release).map(({ id, loaded }) => caseOf(`example stack ${id}`, loaded)),
  ];
  const rules = valueRules();
  let real: ProbeAnswer;

  beforeAll(() => {
    real = probe(release, {
      flags: Object.keys(FLAGS),
      values: [...rules.map((r): [string, string] => [r.flag, r.value]), ...[...new Set(rules.map((r) => r.flag))].map((f): [string, string] => [f, BOGUS_VALUE])],
      argvs: cases.flatMap((c) => c.roles.map((r) => ({ id: `${c.id} / ${r.role}`, argv: r.argv }))),
      batchDefaults: DEVICES.map((d) => ({ id: d.id, memoryGiB: d.memoryGiB, name: d.name })),
    });
  }, 20 * 60 * 1000);

  test("the probe talks to that release", () => {
    expect(real.version).toBe(release);
  });

  test.each(Object.keys(FLAGS))("flag table: %s", (flag) => {
    const e = FLAGS[flag];
    const want = tableAccepts(e, release);
    const got = real.flags[flag];
    if (got.accepted !== want) {
      throw new Error(
        `${flag} on vLLM ${release}: the table (${describeEntry(e)}) says ${want ? "accepted" : "refused"}, but the real parser ${
          got.accepted ? (got.error ? `knows it (given no value it says: ${got.error})` : "accepts it") : `says: ${got.error}`
        } -> fix components/plan/data/vllm-flag-history.json`,
      );
    }
  });

  test("flag table values (e.g. --kv-cache-dtype bfloat16): accepted from the release the table names", () => {
    const wrong: string[] = [];
    for (const r of rules) {
      if (!tableAccepts(FLAGS[r.flag], release)) continue; // the flag itself is absent here
      const choices = !real.values.find((v) => v.flag === r.flag && v.value === BOGUS_VALUE)!.accepted;
      const got = real.values.find((v) => v.flag === r.flag && v.value === r.value)!;
      const want = tableAccepts(r, release);
      // Without argparse choices a value the release lacks still parses (it fails later): only "accepted" is checkable.
      if (got.accepted !== want && (want || choices)) {
        wrong.push(`${r.flag} ${r.value} on vLLM ${release}: the table says ${want ? "accepted" : "refused"}; the real parser ${got.accepted ? "accepts it" : `says: ${got.error}`}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test.each(Object.keys(ENVS))("env table: %s is read by vllm/envs.py exactly when the table says", (name) => {
    const e = ENVS[name];
    if (!name.startsWith("VLLM_")) {
      // HF_HOME / HF_TOKEN are huggingface_hub's, not vLLM's: always allowed, never in envs.py.
      expect(tableAccepts(e, release)).toBe(true);
      return;
    }
    const want = tableAccepts(e, release);
    const got = real.envs.includes(name);
    if (got !== want) {
      throw new Error(`${name} on vLLM ${release}: the table (${describeEntry(e)}) says ${want ? "read" : "gone"}, but vllm/envs.py ${got ? "defines it" : "does not define it"}`);
    }
  });

  test("default --gpu-memory-utilization is the table's", () => {
    const h = history.defaults.gpuMemoryUtilization.history.filter((x) => compareVersions(release, x.from) >= 0);
    expect(real.gpuMemoryUtilizationDefault).toBe(h[h.length - 1].value);
  });

  test.each(DEVICES.map((d) => d.id))("scheduler defaults on %s equal the release's own", (device) => {
    const d = DEVICES.find((x) => x.id === device)!;
    const got = real.batchDefaults.find((b) => b.id === device)!;
    const planner = schedulerDefaults(d.memoryGiB, d.name, release);
    let theirs: { maxNumSeqs: number; maxNumBatchedTokens?: number };
    if (got.unsupported) {
      // V0: no device-dependent defaulting code; max_num_seqs is a fixed default, tokens follow max-model-len.
      const fixed = /fixed default (\d+)/.exec(got.unsupported);
      if (!fixed) throw new Error(`vLLM ${release}: ${got.unsupported}`);
      theirs = { maxNumSeqs: Number(fixed[1]) };
    } else {
      theirs = { maxNumSeqs: got.maxNumSeqs!, maxNumBatchedTokens: got.maxNumBatchedTokens! };
    }
    const ours = { maxNumSeqs: planner.maxNumSeqs, ...(theirs.maxNumBatchedTokens !== undefined ? { maxNumBatchedTokens: planner.maxNumBatchedTokens } : {}) };
    const known = KNOWN_DEFAULT_DIFFERENCES[`${release} ${device}`];
    if (known) expect(ours).not.toEqual(theirs);
    else expect({ device, release, ...ours }).toEqual({ device, release, ...theirs });
  });

  describe.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    if (!c.plan.fits) {
      test("is refused by the plan for a reason of its release, and the refusal is no false alarm", () => {
        const problems = c.plan.problems.join("\n");
        expect(problems).toMatch(/vLLM|vllm\.version/);
        // A flag or value the plan says this release lacks: its parser must refuse the command line too.
        if (c.plan.problems.every((p) => / needs vLLM | was removed in vLLM /.test(p))) {
          for (const r of c.roles) {
            const got = real.argvs.find((a) => a.id === `${c.id} / ${r.role}`)!;
            if (got.ok) throw new Error(`vLLM ${release} accepts \`vllm serve ${r.argv.join(" ")}\`, but the plan refuses it:\n${problems}`);
          }
        }
      });
      return;
    }
    test.each(c.roles.map((r) => [r.role, r] as const))("%s: the real parser accepts it, with the planned values", (role, r) => {
      const got = real.argvs.find((a) => a.id === `${c.id} / ${role}`)!;
      if (!got.ok) throw new Error(`vLLM ${release} refuses \`vllm serve ${r.argv.join(" ")}\`: ${got.error}`);
      const want = { ...expectedNamespace(c), ...roleExpectations(c, role) };
      const picked = Object.fromEntries(Object.keys(want).map((k) => [k, got.namespace![k]]));
      expect(picked).toEqual(want);
    });
  });
});
