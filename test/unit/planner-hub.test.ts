// Models outside the catalog, planned from the Hugging Face Hub: config.json and the checkpoint's
// exact size for the pinned revision, cached on disk, offline from the cache. Against the Hub
// stand-in (test/standin/hub.ts, NOT the Hub) on 127.0.0.1: 200, 401 gated, 404 unknown, slow.
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { Writable } from "stream";
import { startStandinHub, StandinHub } from "../standin/hub";
import { fetchHubModel, HubError, indexTotalSize, safetensorsBytes, withHubModel } from "../../components/plan/hub";
import { main } from "../../components/cli/main";
import { CATALOG } from "../../components/plan/catalog";

const TOKEN = "hf_standinGateToken0123456789";
// Llama-3.1-8B's geometry under ids the catalog does not know.
const LLAMA_CONFIG = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 14336, num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 131072, tie_word_embeddings: false, torch_dtype: "bfloat16",
};
const QWEN3_NEXT_CONFIG = {
  architectures: ["Qwen3NextForCausalLM"], model_type: "qwen3_next", hidden_size: 2048, intermediate_size: 5120, num_hidden_layers: 48, num_attention_heads: 16,
  num_key_value_heads: 2, head_dim: 256, full_attention_interval: 4, linear_num_key_heads: 16, linear_num_value_heads: 32, linear_key_head_dim: 128,
  linear_value_head_dim: 128, linear_conv_kernel_dim: 4, num_experts: 512, num_experts_per_tok: 10, moe_intermediate_size: 512, shared_expert_intermediate_size: 512,
  decoder_sparse_step: 1, mlp_only_layers: [], vocab_size: 151936, max_position_embeddings: 262144, tie_word_embeddings: false, torch_dtype: "bfloat16",
};
const TOTAL_SIZE = 16060522496; // Llama-3.1-8B-Instruct's model.safetensors.index.json metadata.total_size

let root: string;
let cache: string;
let hub: StandinHub;
const inCatalog = (id: string) => CATALOG.has(id.toLowerCase());

function repo(id: string, files: Record<string, string>): void {
  for (const [name, body] of Object.entries(files)) {
    const f = path.join(root, ...id.split("/"), name);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, body);
  }
}

function sink(): Writable & { text: string } {
  const w = new Writable({ write(chunk, _e, cb) { (w as any).text += String(chunk); cb(); } }) as Writable & { text: string };
  w.text = "";
  return w;
}

async function plan(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  const saved = { ...process.env };
  Object.assign(process.env, { HF_ENDPOINT: hub.url, PULUMI_VLLM_HUB_CACHE: cache, HF_HUB_OFFLINE: "", HF_TOKEN: "" }, env);
  const out = sink();
  const err = sink();
  try {
    const code = await main(["plan", ...args], out as any, err as any);
    return { code, out: out.text, err: err.text };
  } finally {
    process.env = saved;
  }
}

const AD_HOC = ["--gpus", "1", "--gpu-memory-gib", "80", "--gpu-name", "NVIDIA H100 80GB HBM3", "--max-model-len", "16384", "--vllm-version", "0.19.0", "--json"];

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pv-hub-"));
  cache = fs.mkdtempSync(path.join(os.tmpdir(), "pv-hubcache-"));
  repo("acme/llama-like-8b", {
    "config.json": JSON.stringify(LLAMA_CONFIG),
    "model.safetensors.index.json": JSON.stringify({ metadata: { total_size: TOTAL_SIZE }, weight_map: {} }),
    "model-00001-of-00002.safetensors": "x".repeat(10),
  });
  // A one-file checkpoint: no index, the size comes from the file list.
  repo("acme/tiny-one-file", { "config.json": JSON.stringify({ ...LLAMA_CONFIG, num_hidden_layers: 2, hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 1000 }), "model.safetensors": "w".repeat(1234) });
  // Qwen3-Next-80B-A3B's geometry (hybrid: gated delta net + attention, 512 experts) under an unknown id.
  repo("acme/hybrid-next-80b", { "config.json": JSON.stringify(QWEN3_NEXT_CONFIG) });
  repo("acme/gated-8b", { "config.json": JSON.stringify(LLAMA_CONFIG), "model.safetensors.index.json": JSON.stringify({ metadata: { total_size: TOTAL_SIZE } }) });
  hub = await startStandinHub({ root, gated: { "acme/gated-8b": TOKEN } });
});
afterAll(async () => {
  await hub.close();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(cache, { recursive: true, force: true });
});

describe("reading what the Hub gives", () => {
  test("the safetensors index's total_size is the checkpoint size; nonsense is not", () => {
    expect(indexTotalSize({ metadata: { total_size: 42 } })).toBe(42);
    expect(indexTotalSize({ metadata: { total_size: "42" } })).toBeUndefined();
    expect(indexTotalSize(null)).toBeUndefined();
  });
  test("a one-file checkpoint: the top-level *.safetensors sizes (LFS size first)", () => {
    expect(safetensorsBytes([{ path: "model.safetensors", size: 134, lfs: { size: 5000 } }, { path: "README.md", size: 9 }])).toBe(5000);
    expect(safetensorsBytes([{ path: "README.md", size: 9 }])).toBeUndefined();
  });
});

describe("pulumi-vllm plan of a model outside the catalog, from the Hub stand-in", () => {
  test("a hybrid linear-attention model (Qwen3-Next's config) gets a plan: parameters from config.json, KV per token from its 12 attention layers only", async () => {
    const r = await plan(["--model", "acme/hybrid-next-80b", "--gpus", "4", "--gpu-memory-gib", "80", "--gpu-name", "NVIDIA H100 80GB HBM3", "--max-model-len", "32768", "--vllm-version", "0.22.0", "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const p = JSON.parse(r.out);
    expect(p.gpu.kvBytesPerToken).toBe(12 * 2 * 1 * 256 * 2); // 2 KV heads over TP 4: one per GPU
    expect(p.gpu.weightsGiB).toBeGreaterThan(36); // ~79.7B bf16 over 4 GPUs
    expect(p.gpu.kvCacheGiB).toBeGreaterThan(20);
  });
  test("a hybrid whose KV pool holds fewer state blocks than max-num-seqs is refused, with the fix (the refusal of vllm/recipes#551)", async () => {
    // Qwen3-Next on 2 GPUs at 0.95 and the H100 default of 1024 sequences: vLLM needs one state block a sequence.
    const args = ["--model", "acme/hybrid-next-80b", "--gpus", "2", "--gpu-memory-gib", "80", "--gpu-name", "NVIDIA H100 80GB HBM3", "--quantization", "fp8", "--max-model-len", "262144", "--vllm-version", "0.22.0", "--gpu-memory-utilization", "0.95"];
    const refused = await plan([...args, "--max-num-seqs", "100000"]);
    expect(refused.code).not.toBe(0);
    expect(refused.err + refused.out).toMatch(/serving.maxNumSeqs: 100000 sequences need 100000 state blocks, .* holds \d+: vLLM 0.22.0 refuses to start .* -> set serving.maxNumSeqs to \d+ or lower/);
    expect((await plan([...args, "--max-num-seqs", "256"])).code).toBe(0);
  });
  test("200: fetched, planned exactly like the same config.json given by hand, with the index's exact checkpoint size", async () => {
    const fetched = await plan(["--model", "acme/llama-like-8b", ...AD_HOC]);
    expect(fetched.err).toBe("");
    expect(fetched.code).toBe(0);
    const p = JSON.parse(fetched.out);
    const local = path.join(root, "acme", "llama-like-8b", "config.json");
    const byHand = JSON.parse((await plan(["--model", "acme/llama-like-8b", "--model-config", local, ...AD_HOC])).out);
    expect(p.gpu.kvCacheGiB).toBe(byHand.gpu.kvCacheGiB);
    expect(p.gpu.kvCacheGiB).toBeGreaterThan(50);
    // 16,060,522,496 B = 14.96 GiB from the index, not the estimate from the parameter count
    expect(p.gpu.checkpointGiB).toBeCloseTo(TOTAL_SIZE / 2 ** 30, 2);
    expect(p.model.source).toContain(path.join(cache, "acme", "llama-like-8b", hub.commitOf("acme/llama-like-8b"), "config.json"));
  });

  test("a one-file checkpoint's size comes from the file list", async () => {
    const m = await fetchHubModel({ repo: "acme/tiny-one-file", endpoint: hub.url, cacheDir: cache });
    expect(m.checkpointBytes).toBe(1234);
    expect(m.from).toBe("hub");
  });

  test("401 gated without a token: says the model is gated and how to set the secret; with the token it plans", async () => {
    const r = await plan(["--model", "acme/gated-8b", ...AD_HOC]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/hfToken: acme\/gated-8b is gated or private on the Hub \(401 GatedRepo\) and no token was given -> .*pulumi config set --secret hfToken <token>.*HF_TOKEN/);
    const ok = await plan(["--model", "acme/gated-8b", ...AD_HOC], { HF_TOKEN: TOKEN });
    expect(ok.err).toBe("");
    expect(ok.code).toBe(0);
    expect(hub.requests.some((q) => q.path.includes("gated-8b") && q.authorized)).toBe(true);
    // a wrong token: refused, and the token itself is never printed
    const wrong = await fetchHubModel({ repo: "acme/gated-8b", revision: "main", token: "hf_wrongSecretValue42", endpoint: hub.url, cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "pv-hc-")) }).catch((e) => e);
    expect(wrong).toBeInstanceOf(HubError);
    expect(wrong.message).toMatch(/^hfToken: the Hub refused the token for acme\/gated-8b/);
    expect(wrong.message).not.toContain("hf_wrongSecretValue42");
  });

  test("404: an unknown repository and an unknown revision, each with its fix", async () => {
    const r = await plan(["--model", "acme/no-such-model", ...AD_HOC]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/model.id: acme\/no-such-model is not a model repository on http:\/\/127\.0\.0\.1:\d+ \(404\) -> check the id's spelling/);
    const rev = await plan(["--model", "acme/llama-like-8b", "--revision", "v9.9", ...AD_HOC]);
    expect(rev.code).toBe(1);
    expect(rev.err).toMatch(/model.revision: v9.9 is not a branch, tag or commit of acme\/llama-like-8b .* -> set model.revision to one that exists/);
  });

  test("a slow Hub: a time limit, and an error that says to set configPath or plan offline", async () => {
    hub.set({ delayMs: 1500 });
    try {
      const t0 = Date.now();
      const r = await plan(["--model", "acme/tiny-one-file", "--revision", "main", "--hub-timeout", "0.3", ...AD_HOC], { PULUMI_VLLM_HUB_CACHE: fs.mkdtempSync(path.join(os.tmpdir(), "pv-hc-")) });
      expect(Date.now() - t0).toBeLessThan(1400);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/model.id: the Hub at http:\/\/127\.0\.0\.1:\d+ did not answer within 0.3 s .* -> set model.configPath .*offline \(HF_HUB_OFFLINE=1\)/);
    } finally {
      hub.set({ delayMs: 0 });
    }
  });

  test("an unreachable Hub says so", async () => {
    // a port nobody listens on: take a free one and let it go
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const r = await plan(["--model", "acme/tiny-one-file", ...AD_HOC], { HF_ENDPOINT: `http://127.0.0.1:${port}`, PULUMI_VLLM_HUB_CACHE: fs.mkdtempSync(path.join(os.tmpdir(), "pv-hc-")) });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`model.id: the Hub at http://127.0.0.1:${port} cannot be reached (ECONNREFUSED)`);
  });

  test("a pinned commit in the cache is never fetched again, also with the Hub gone; offline uses the cache or says what to do", async () => {
    const commit = hub.commitOf("acme/llama-like-8b");
    const first = await fetchHubModel({ repo: "acme/llama-like-8b", revision: commit, endpoint: hub.url, cacheDir: cache });
    const before = hub.requests.length;
    const again = await fetchHubModel({ repo: "acme/llama-like-8b", revision: commit, endpoint: "http://127.0.0.1:1", cacheDir: cache });
    expect(hub.requests.length).toBe(before);
    expect(again).toEqual({ ...first, from: "cache" });
    expect(again.checkpointBytes).toBe(TOTAL_SIZE);
    // offline: a branch resolves through the cache's ref; the CLI flag and HF_HUB_OFFLINE both switch it on
    const off = await plan(["--model", "acme/llama-like-8b", "--offline", ...AD_HOC]);
    expect(off.code).toBe(0);
    const env = await plan(["--model", "acme/llama-like-8b", ...AD_HOC], { HF_HUB_OFFLINE: "1" });
    expect(env.code).toBe(0);
    expect(hub.requests.length).toBe(before);
    const miss = await plan(["--model", "acme/never-fetched", "--offline", ...AD_HOC]);
    expect(miss.code).toBe(1);
    expect(miss.err).toMatch(/model.id: acme\/never-fetched is not in the catalog nor in the Hub cache .*\(offline mode\) -> plan once online to fill the cache, or set model.configPath/);
  });

  test("catalog models, local paths and a given configPath never ask the Hub", async () => {
    const before = hub.requests.length;
    const m = { id: "meta-llama/Llama-3.1-8B-Instruct" };
    expect(await withHubModel(m, inCatalog, { endpoint: hub.url, cacheDir: cache })).toBe(m);
    const local = { id: "/models/llama", configPath: "/tmp/x.json" };
    expect(await withHubModel(local, inCatalog, { endpoint: hub.url, cacheDir: cache })).toBe(local);
    expect(hub.requests.length).toBe(before);
  });
});
