// vLLM's startup figures read from its own log lines: the real lines quoted in
// the public case set (vllm-log-figures.json), the stand-in's lines for each
// release format, the readiness gate's `vllm:` output, and the comparison
// with a plan (a miss over 10 % is a warning that says so).
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import figures from "./data/vllm-log-figures.json";
import { compareWithMeasured, measuredOfReadiness, parseStartupLines } from "../../components/plan/measured";

type Figure = (typeof figures)[number];

describe("parsing real vLLM startup lines (the public case set's quotes)", () => {
  const withQuotes = (figures as Figure[]).filter((f) => f.quotes.length);
  test.each(withQuotes.map((f) => [f.id, f] as const))("%s", (_id, f) => {
    const m = parseStartupLines(f.quotes.join("\n"));
    const o = f.observed as Record<string, number | null>;
    const quoted = (re: RegExp) => f.quotes.some((q) => re.test(q));
    // every figure the case records from a quoted line is what the parser reads from it
    if (o.availableKvGiB !== null && quoted(/Available KV cache memory|kv_cache_size=|reserved for KV Cache is|available_kv_cache_memory|Current kv cache memory in use is [\d.]+ GiB/)) expect(m.availableKvGiB).toBe(o.availableKvGiB);
    if (o.modelLoadingGiB !== null && quoted(/Model loading took|weights took [\d.]+ GB|model weights take/)) expect(m.weightsGiB).toBeCloseTo(o.modelLoadingGiB, 4);
    if (o.kvCacheTokens !== null && quoted(/KV cache size: [\d,]+ tokens/)) expect(m.kvCacheTokens).toBe(o.kvCacheTokens);
    if (o.maxConcurrency !== null && quoted(/Maximum concurrency for/)) expect(m.maxConcurrency).toBe(o.maxConcurrency);
  });

  test("the set exercises every format the parser knows", () => {
    const all = (figures as Figure[]).flatMap((f) => f.quotes).join("\n");
    for (const re of [/Model loading took [\d.]+ GiB memory and/, /Model loading took [\d.]+ GiB and/, /Loading model weights took [\d.]+ GB/, /model weights take/, /Available KV cache memory: -/, /Current kv cache memory in use is [\d.]+ GiB/, /kv_cache_size=/, /reserved for KV Cache is/, /GPU KV cache size/, /# GPU blocks/, /# cuda blocks/, /Maximum concurrency for [\d,]+ tokens/, /Estimated CUDA graph memory/, /Graph capturing finished in \d+ secs, took/]) {
      expect(all).toMatch(re);
    }
  });

  test("with several workers: the smallest KV memory (vLLM sizes by it), the largest weights and graphs", () => {
    const m = parseStartupLines(
      [
        "(Worker_TP0 pid=1) INFO 08-14 14:07:22 [gpu_worker.py:563] Available KV cache memory: 6.87 GiB",
        "(Worker_TP1 pid=2) INFO 08-14 14:07:22 [gpu_worker.py:563] Available KV cache memory: 6.81 GiB",
        "(Worker_TP0 pid=1) INFO [gpu_model_runner.py:1] Model loading took 9.1 GiB memory and 3.0 seconds",
        "(Worker_TP1 pid=2) INFO [gpu_model_runner.py:1] Model loading took 9.3 GiB memory and 3.0 seconds",
        "(Worker_TP1 pid=448) INFO 08-14 14:07:22 [gpu_model_runner.py:6806] Estimated CUDA graph memory: 0.36 GiB total",
        "(EngineCore pid=5) INFO [kv_cache_utils.py:1148] GPU KV cache size: 140,960 tokens, Maximum concurrency for 40,960 tokens per request: 3.44x",
      ].join("\n"),
    );
    expect(m).toEqual({ availableKvGiB: 6.81, weightsGiB: 9.3, cudaGraphEstimateGiB: 0.36, kvCacheTokens: 140960, maxConcurrency: 3.44, maxConcurrencyTokens: 40960 });
  });
});

describe("the vLLM stand-in prints the figures in each release's format, and the parser reads them back", () => {
  const standin = path.join(__dirname, "..", "standin");
  const knobs = { VLLM_STANDIN_WEIGHTS_GIB: "15.27", VLLM_STANDIN_KV_GIB: "19.36", VLLM_STANDIN_KV_TOKENS: "140960", VLLM_STANDIN_GRAPH_GIB: "2.35" };
  const run = (version: string): string => {
    // VLLM_STANDIN_CRASH: it logs its startup, then exits 1 instead of serving
    try {
      return execFileSync("python3", ["-m", "vllm_standin", "serve", "Qwen/Qwen3-8B", "--max-model-len", "40960"], {
        cwd: standin, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000,
        env: { ...process.env, ...knobs, VLLM_STANDIN_VERSION: version, VLLM_STANDIN_CRASH: "1", VLLM_STANDIN_RECORD: path.join(os.tmpdir(), `pv-measured-${process.pid}.json`) },
      });
    } catch (e) {
      return String((e as { stderr?: string }).stderr ?? "");
    }
  };
  test.each([
    ["0.6.0", { weightsGiB: 15.27, gpuBlocks: 8810 }],
    ["0.7.3", { weightsGiB: 15.27, availableKvGiB: 19.36, gpuBlocks: 8810, maxConcurrency: 3.44, maxConcurrencyTokens: 40960 }],
    ["0.11.0", { weightsGiB: 15.27, availableKvGiB: 19.36, kvCacheTokens: 140960, maxConcurrency: 3.44, maxConcurrencyTokens: 40960, cudaGraphGiB: 2.35 }],
    ["0.15.0", { weightsGiB: 15.27, availableKvGiB: 19.36, kvCacheTokens: 140960, maxConcurrency: 3.44, maxConcurrencyTokens: 40960, cudaGraphGiB: 2.35 }],
    ["0.33.0", { weightsGiB: 15.27, availableKvGiB: 19.36, kvCacheTokens: 140960, maxConcurrency: 3.44, maxConcurrencyTokens: 40960, cudaGraphGiB: 2.35, cudaGraphEstimateGiB: 2.35 }],
  ])("%s", (version, want) => {
    const log = run(version);
    expect(log).toContain("THIS IS vllm-standin");
    expect(parseStartupLines(log)).toEqual(want);
  });
});

describe("a multi-node job: every node's workers print their own figures into the one job log", () => {
  const standin = path.join(__dirname, "..", "standin");
  // A headless worker (node rank 1 of `--nnodes 2`) prints its workers' lines, then looks for its master:
  // none here, so it gives up after a second. The figures are per node rank (a comma list, rank 0 first).
  test("the stand-in's headless worker logs its rank's weights, KV memory and graph lines, not the engine's", () => {
    const r = spawnSync("python3", ["-m", "vllm_standin", "serve", "m", "--nnodes", "2", "--node-rank", "1", "--master-addr", "127.0.0.1", "--master-port", "1", "--headless"], {
      cwd: standin, encoding: "utf8", timeout: 30_000,
      env: { ...process.env, VLLM_STANDIN_VERSION: "0.11.1", VLLM_STANDIN_MULTINODE_TIMEOUT: "1", VLLM_STANDIN_WEIGHTS_GIB: "17.2,17.45", VLLM_STANDIN_KV_GIB: "20.1,19.36", VLLM_STANDIN_KV_TOKENS: "140960", VLLM_STANDIN_GRAPH_GIB: "2.1,2.3" },
    });
    expect(r.stderr).toMatch(/^\(Worker_PP1_TP0 pid=\d+\) INFO .* Available KV cache memory: 19\.36 GiB$/m);
    expect(parseStartupLines(r.stderr)).toEqual({ weightsGiB: 17.45, availableKvGiB: 19.36, cudaGraphGiB: 2.3 });
  });
});

describe("the step library's measured_lines (lib/measured.sh): the lines the parser reads, from a log, redacted", () => {
  const LIB = path.join(__dirname, "..", "..", "components", "host", "scripts", "lib");
  const run = (log: string, secrets: string[], max?: number) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-measured-lib-"));
    try {
      fs.writeFileSync(path.join(dir, "job.out"), log);
      const script = `set -euo pipefail\n. ${JSON.stringify(path.join(LIB, "redact.sh"))}\n. ${JSON.stringify(path.join(LIB, "measured.sh"))}\nSECRET_VALUES=("$@")\nmeasured_lines ${max ?? ""} <${JSON.stringify(path.join(dir, "job.out"))}\n`;
      const r = spawnSync("bash", ["-c", script, "pv-test", ...secrets], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      return r.stdout;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  test("every release format the stand-in prints: the gate's `vllm:` lines give the parser's figures of the whole log", () => {
    const standin = path.join(__dirname, "..", "standin");
    for (const version of ["0.6.0", "0.7.3", "0.11.0", "0.15.0", "0.33.0"]) {
      const r = spawnSync("python3", ["-m", "vllm_standin", "serve", "m", "--max-model-len", "40960"], {
        cwd: standin, encoding: "utf8", timeout: 30_000,
        env: { ...process.env, VLLM_STANDIN_VERSION: version, VLLM_STANDIN_CRASH: "1", VLLM_STANDIN_WEIGHTS_GIB: "15.27", VLLM_STANDIN_KV_GIB: "19.36", VLLM_STANDIN_KV_TOKENS: "140960", VLLM_STANDIN_GRAPH_GIB: "2.35", VLLM_STANDIN_RECORD: path.join(os.tmpdir(), `pv-measured-lib-${process.pid}.json`) },
      });
      const out = run(r.stderr, []);
      expect(out.split("\n").filter(Boolean).every((l) => l.startsWith("vllm: "))).toBe(true);
      expect(out).not.toMatch(/Loading safetensors|THIS IS vllm-standin/);
      expect(measuredOfReadiness(out)).toEqual(parseStartupLines(r.stderr));
    }
  });

  test("every real line the parser reads a figure from (the public case set's quotes) is one the gate prints", () => {
    const missed = (figures as Figure[])
      .filter((f) => f.quotes.length)
      .filter((f) => JSON.stringify(measuredOfReadiness(run(f.quotes.join("\n") + "\n", [], 1000)) ?? {}) !== JSON.stringify(parseStartupLines(f.quotes.join("\n"))))
      .map((f) => f.id);
    expect(missed).toEqual([]);
  });

  test("secrets redacted, at most N lines (default 64)", () => {
    const line = (i: number) => `(Worker_TP${i} pid=${i}) INFO [gpu_worker.py:298] Available KV cache memory: ${20 - i / 100} GiB tok=sk-secret-1`;
    const log = Array.from({ length: 100 }, (_, i) => line(i)).join("\n") + "\n";
    const out = run(log, ["sk-secret-1"]);
    expect(out).not.toContain("sk-secret-1");
    expect(out).toContain("tok=[REDACTED]");
    expect(out.trim().split("\n")).toHaveLength(64);
    expect(run(log, ["sk-secret-1"], 256).trim().split("\n")).toHaveLength(100);
  });
});

describe("plan vs measured", () => {
  test("the readiness gate's `vllm:` lines are the measured figures; none -> undefined", () => {
    const stdout = [
      "vllm: (EngineCore pid=3380462) INFO 06-25 17:21:52 [gpu_model_runner.py:4820] Model loading took 15.27 GiB memory and 4.543456 seconds",
      "vllm: (EngineCore pid=3380462) INFO 06-25 17:21:58 [gpu_worker.py:436] Available KV cache memory: 19.36 GiB",
      "Available KV cache memory: 99 GiB (not a vllm: line, ignored)",
      "ready: http://127.0.0.1:8000 serves qwen (active/running, MainPID 1) after 9s",
      "unchanged",
    ].join("\n");
    expect(measuredOfReadiness(stdout)).toEqual({ weightsGiB: 15.27, availableKvGiB: 19.36 });
    expect(measuredOfReadiness("ready: x\nunchanged\n")).toBeUndefined();
  });

  test("within 10 %: rows, no warning; beyond: a warning that says by how much and which way", () => {
    const planned = { weightsGiB: 15.26, kvCacheGiB: 19.1, kvCacheTokens: 139000, cudaGraphGiB: 0 };
    const ok = compareWithMeasured(planned, { weightsGiB: 15.27, availableKvGiB: 19.36, kvCacheTokens: 140960 });
    expect(ok.rows.map((r) => r.what)).toEqual(["weights GiB", "KV cache GiB", "KV cache tokens"]);
    expect(ok.warnings).toEqual([]);
    const off = compareWithMeasured({ ...planned, kvCacheGiB: 23.5 }, { availableKvGiB: 19.36 });
    expect(off.warnings).toHaveLength(1);
    expect(off.warnings[0]).toMatch(/^measured: the plan's KV cache GiB \(23\.50\) is 21 % above what vLLM reported at the last start \(19\.36\) -> .*optimistic/);
    const under = compareWithMeasured({ ...planned, kvCacheGiB: 15 }, { availableKvGiB: 19.36 });
    expect(under.warnings[0]).toMatch(/23 % below/);
  });
});
