// The stack config: one zod schema, the single source of truth for what a
// stack may say. index.ts and the `plan` command both read config through
// `parseStackConfig`, so a bad config fails `pulumi preview` and `plan` the
// same way, before any host is touched.
//
// Every string is validated for what it is (components/config/strings.ts):
// a path, a unit name, a host name, a SLURM name... so that no value can
// become a line of a shell script, a unit file or a batch script, and no
// renderer downstream ever meets a value it cannot carry.
//
// Numbers and booleans may arrive as strings (`pulumi config set --path
// pulumi-vllm:serving.gpuMemoryUtilization 0.85` stores "0.85"): such strings
// are read as the number or boolean they spell.
//
// Secrets (SSH private key, HF token, API key) are NOT in this object: they
// are separate secret config keys read as Pulumi secrets (see
// components/config/load.ts), so this object can be validated synchronously
// and printed without leaking anything.
import { hostKeyProblem } from "../host/host-key";
import { z } from "zod";
import { isVllmVersion } from "../plan/version";
import {
  envName,
  hostName,
  hostPath,
  isHostOrIp,
  isSecretEnvName,
  jobName,
  label,
  localPath,
  modelId,
  revision,
  SECRET_FLAGS,
  servedName,
  slurmName,
  text,
  textProblem,
  unitName,
  userName,
  serviceUserName,
  worldWritableLooking,
  describeValue,
} from "./strings";

// ---- numbers and booleans, also when given as strings ---------------------

const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** "0.85" -> 0.85, "4096" -> 4096; anything else unchanged (and then refused with what it is). */
export function numberFromString(v: unknown): unknown {
  return typeof v === "string" && NUMERIC.test(v.trim()) ? Number(v.trim()) : v;
}
/** "true"/"false" -> true/false; anything else unchanged. */
export function booleanFromString(v: unknown): unknown {
  return v === "true" ? true : v === "false" ? false : v;
}

const withNumbers = <T extends z.ZodType>(inner: T) => z.preprocess(numberFromString, inner);

/** A whole number in [min, max]. */
const int = (min: number, max: number, example = min) =>
  withNumbers(
    z
      .number()
      .int(`must be a whole number -> e.g. ${example}`)
      .min(min, `must be at least ${min} -> e.g. ${example}`)
      .max(max, `must be at most ${max} -> lower it`),
  );

/** A number above `gt` (or at least `min`) and at most `max`. */
const real = (o: { gt?: number; min?: number; max: number; example: number }) => {
  let n = z.number();
  if (o.gt !== undefined) n = n.gt(o.gt, `must be above ${o.gt} -> e.g. ${o.example}`);
  if (o.min !== undefined) n = n.min(o.min, `must be at least ${o.min} -> e.g. ${o.example}`);
  return withNumbers(n.max(o.max, `must be at most ${o.max} -> lower it`));
};

const bool = () => z.preprocess(booleanFromString, z.boolean());

const port = int(1, 65535, 8000);

const hostKeyLine = text({
  max: 16384,
  leadingDash: true,
  check: (k) =>
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\s].*)?$/.test(k)
      ? hostKeyProblem(k)
      : "must be a public host key line such as `ssh-ed25519 AAAA...` -> `ssh-keyscan -t ed25519 HOST` prints it",
});

// ---- connection -----------------------------------------------------------

/** Where to reach a host over SSH. The private key is secret config `sshPrivateKey` or a local file. */
export const JumpHost = z.strictObject({
  /** Host name or IP of the jump (bastion) host. Required. */
  host: hostName(),
  /** SSH port of the jump host. Defaults to 22. */
  port: port.default(22),
  /** Login on the jump host. Defaults to root. */
  user: userName().default("root"),
  /** Local path of the jump host's private key. Defaults to the main key. */
  privateKeyPath: localPath().optional(),
  /** The jump host's public key line, pinned. Defaults to none (not checked). */
  hostKey: hostKeyLine.optional(),
});

export const Connection = z
  .strictObject({
    /** Host name or IP of the target (for slurm: the login node). Required. */
    host: hostName(),
    /** SSH port. Defaults to 22. */
    port: port.default(22),
    /** SSH login. Defaults to root. */
    user: userName().default("root"),
    /** Local path of the private key; alternative to the secret config key `sshPrivateKey`. Defaults to none. */
    privateKeyPath: localPath().optional(),
    /** The host's public key line, pinned: the connection fails if the host presents another. Defaults to none. */
    hostKey: hostKeyLine.optional(),
    /** Local file holding the host key line (for hosts whose key is made at boot, like the dev sandbox). Defaults to none. */
    hostKeyPath: localPath().optional(),
    /** Explicitly accept any host key. Defaults to false: an unpinned key lets anyone on the path impersonate the host. */
    insecureSkipHostKeyCheck: bool().default(false),
    /** Run host steps through `sudo -n`. Defaults to true when user is not root. */
    sudo: bool().optional(),
    /** A jump host to reach the target through. Defaults to none. */
    jump: JumpHost.optional(),
    /** Seconds per SSH dial attempt. Defaults to 15. */
    dialTimeoutSeconds: int(1, 3600, 15).default(15),
    /** How many failed dials end the step. Defaults to 10. */
    dialErrorLimit: int(1, 1000, 10).default(10),
  })
  .superRefine((c, ctx) => {
    if (!c.hostKey && !c.hostKeyPath && !c.insecureSkipHostKeyCheck) {
      ctx.addIssue({
        code: "custom",
        path: ["hostKey"],
        message:
          "no host key is pinned -> set connection.hostKey to the line `ssh-keyscan -t ed25519 <host>` prints (or connection.hostKeyPath), or insecureSkipHostKeyCheck: true if you accept the risk",
      });
    }
    if (c.hostKey && c.hostKeyPath) {
      ctx.addIssue({ code: "custom", path: ["hostKeyPath"], message: "both hostKey and hostKeyPath are set -> keep one" });
    }
  });

// ---- hardware -------------------------------------------------------------

export const Interconnect = z.enum(["pcie-x1-riser", "pcie", "nvlink"]);

export const Hardware = z
  .strictObject({
    /** GPUs on the host (for slurm: per node, equal to slurm.gpusPerNode). Required. */
    gpuCount: int(1, 256, 1),
    /** Total memory of ONE GPU in GiB as nvidia-smi reports it (e.g. 24 for an RTX 3090, 80 for an H100). Required. */
    gpuMemoryGiB: real({ gt: 0, max: 4096, example: 24 }),
    /** Name of the GPU, shown in the plan and used for vLLM's scheduler defaults. Defaults to "unknown GPU". */
    gpuName: label().default("unknown GPU"),
    /** How the GPUs talk: pcie-x1-riser (mining rigs), pcie or nvlink. Defaults to pcie. */
    interconnect: Interconnect.default("pcie"),
    /** Host RAM in GiB (per node for slurm). Required. */
    hostRamGiB: real({ gt: 0, max: 1048576, example: 64 }),
    /** Free disk in GiB where the model cache, venv and swapfile go. Required. */
    freeDiskGiB: real({ min: 0, max: 1e9, example: 500 }),
    /** CPU cores: sizes the compile worker estimate of the host RAM plan. Defaults to 4. */
    cpuCores: int(1, 100000, 4).default(4),
    /** Memory other processes (a desktop, Xorg) hold on each GPU, in GiB. Defaults to 0. */
    gpuMemoryInUseGiB: real({ min: 0, max: 4096, example: 0.5 }).default(0),
    /** MB/s the host downloads from the Hugging Face Hub at: the plan's download estimate and the weights step's time limit. Defaults to 50. */
    downloadMBps: real({ gt: 0, max: 1e6, example: 50 }).default(50),
  })
  .superRefine((h, ctx) => {
    if (h.gpuMemoryInUseGiB >= h.gpuMemoryGiB) {
      ctx.addIssue({
        code: "custom",
        path: ["gpuMemoryInUseGiB"],
        message: `other processes cannot hold ${h.gpuMemoryInUseGiB} GiB of a ${h.gpuMemoryGiB} GiB GPU -> give what nvidia-smi shows in use before vLLM starts (less than hardware.gpuMemoryGiB)`,
      });
    }
  });

// ---- model ----------------------------------------------------------------

export const Quantization = z.enum([
  "none",
  "gptq",
  "gptq_marlin",
  "awq",
  "awq_marlin",
  "fp8",
  "bitsandbytes",
  "mxfp4",
  "compressed-tensors",
]);
export const Dtype = z.enum(["auto", "float16", "bfloat16", "half"]);
export const KvCacheDtype = z.enum(["auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"]);

/** A commit hash pins exactly what runs; a branch or tag can be moved by the repository's owner. */
export const PINNED_REVISION = /^[0-9a-f]{40}$/;

export const Model = z
  .strictObject({
    /** Hugging Face id, e.g. Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8 (or an absolute path to a checkpoint on the host). Required. */
    id: modelId(),
    /** Branch, tag or commit of the model repository. Defaults to the repository's default branch. */
    revision: revision().optional(),
    /** `none` means: whatever the checkpoint is (a GPTQ checkpoint stays GPTQ). Defaults to none. */
    quantization: Quantization.default("none"),
    /** Weight dtype. Defaults to auto (the checkpoint's). */
    dtype: Dtype.default("auto"),
    /** KV cache dtype; fp8 halves the KV bytes. Defaults to auto. */
    kvCacheDtype: KvCacheDtype.default("auto"),
    /** Local path of the model's config.json, for a model not in the catalog. Defaults to none (the catalog). */
    configPath: localPath().optional(),
    /** Parameter count in billions, for a model given by configPath when its config cannot tell. Defaults to the estimate from config.json. */
    paramsB: real({ gt: 0, max: 100000, example: 7 }).optional(),
    /** Exact size of the checkpoint's weights in bytes (model.safetensors.index.json metadata.total_size). Filled from the Hub for models outside the catalog; defaults to the estimate from the parameters. */
    checkpointBytes: real({ gt: 0, max: 1e15, example: 16060522496 }).optional(),
    /** Run the Python code of the model repository (vLLM --trust-remote-code). Needs a pinned revision or acknowledgeRemoteCode. Defaults to false. */
    trustRemoteCode: bool().default(false),
    /** Accept running unpinned remote code: whoever can push to the model repository can then run code on the host. Defaults to false. */
    acknowledgeRemoteCode: bool().default(false),
    /**
     * Download the weights in a step of their own before vLLM starts (resumable, the disk checked first, vLLM then
     * starts with HF_HUB_OFFLINE=1); false leaves the download to vLLM's first start. A path on the host is never
     * downloaded. Defaults to true.
     */
    download: bool().default(true),
  })
  .superRefine((m, ctx) => {
    if (m.trustRemoteCode && !(m.revision && PINNED_REVISION.test(m.revision)) && !m.acknowledgeRemoteCode) {
      ctx.addIssue({
        code: "custom",
        path: ["trustRemoteCode"],
        message:
          "runs the model repository's Python code, and without a pinned commit whoever can push to it can run code on your host -> set model.revision to a commit hash (40 hex digits) you reviewed, or model.acknowledgeRemoteCode: true to accept the risk",
      });
    }
  });

// ---- serving --------------------------------------------------------------

const MAX_MODEL_LEN = 1 << 27;

/** maxModelLen: a number of tokens (4096, "4096", "32k") or "auto". Output: a number or "auto"/"Nk". */
const maxModelLen = z.unknown().transform((v, ctx): number | string => {
  const fail = (message: string) => {
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  };
  const asNumber = numberFromString(v);
  if (typeof asNumber === "number") {
    if (!Number.isInteger(asNumber)) return fail("must be a whole number of tokens -> e.g. 4096, 32k or auto");
    if (asNumber < 1) return fail(`must be at least 1 token -> e.g. 4096, 32k, or auto (the largest that fits)`);
    if (asNumber > MAX_MODEL_LEN) return fail(`must be at most ${MAX_MODEL_LEN} tokens -> lower it, or auto`);
    return asNumber;
  }
  if (typeof v === "string") {
    if (v === "auto") return v;
    const m = /^(\d+)[kK]$/.exec(v);
    if (m && Number(m[1]) >= 1 && Number(m[1]) * 1024 <= MAX_MODEL_LEN) return v;
    return fail(`expected a number of tokens or auto, got ${describeValue(v)} -> e.g. 4096, 32k or auto`);
  }
  return fail(`expected a number of tokens or auto, got ${describeValue(v)} -> e.g. 4096, 32k or auto`);
});

export const ApiKeyPolicy = z.enum(["generate", "config", "none"]);

const LOOPBACK = ["127.0.0.1", "localhost", "::1"];

/** Flags the renderer sets from config keys: given again in extraArgs they would silently win. */
const MANAGED_FLAGS: Record<string, string> = {
  "--host": "serving.bindHost",
  "--port": "serving.port",
  "--served-model-name": "serving.servedModelName",
  "--trust-remote-code": "model.trustRemoteCode (and a pinned model.revision)",
  "--revision": "model.revision",
};

const EXTRA_ARGS_TOTAL = 4096;

/** What is wrong with serving.extraArgs as a whole, `[index, what -> fix]`. */
function extraArgsProblems(args: string[]): [number | undefined, string][] {
  const out: [number | undefined, string][] = [];
  const total = args.reduce((n, a) => n + a.length + 1, 0);
  if (total > EXTRA_ARGS_TOTAL) out.push([undefined, `hold ${total} characters, more than the ${EXTRA_ARGS_TOTAL} allowed in all -> keep extraArgs short`]);
  args.forEach((a, i) => {
    if (!a.startsWith("--")) return;
    const flag = a.split("=", 1)[0];
    // Python's argparse also accepts an unambiguous prefix (--api-k): refuse those as well.
    const isOrAbbreviates = (f: string) => f === flag || (flag.length >= 5 && f.startsWith(flag));
    const secret = SECRET_FLAGS.find(isOrAbbreviates);
    if (secret) {
      out.push([
        i,
        secret === "--api-key"
          ? `${secret} would put the API key into argv, the unit file and plain state -> remove it and use serving.apiKey: generate, or \`pulumi config set --secret apiKey <key>\` with serving.apiKey: config`
          : `${secret} would put the token into argv, the unit file and plain state -> remove it and run \`pulumi config set --secret hfToken <token>\``,
      ]);
      return;
    }
    const managed = Object.keys(MANAGED_FLAGS).find(isOrAbbreviates);
    if (managed) out.push([i, `${managed} is set from ${MANAGED_FLAGS[managed]} -> remove it from extraArgs and set ${MANAGED_FLAGS[managed]}`]);
  });
  return out;
}

/** The address the server really binds: the last --host of extraArgs wins over bindHost in vLLM's parser. */
export function effectiveBindHost(s: { bindHost: string; extraArgs: string[] }): string {
  let host = s.bindHost;
  s.extraArgs.forEach((a, i) => {
    if (a === "--host" && i + 1 < s.extraArgs.length) host = s.extraArgs[i + 1];
    else if (a.startsWith("--host=")) host = a.slice("--host=".length);
  });
  return host;
}

export const Serving = z
  .strictObject({
    /** GPUs one layer is split over (vLLM --tensor-parallel-size). Defaults to 1. */
    tensorParallel: int(1, 1024, 2).default(1),
    /** Pipeline stages (vLLM --pipeline-parallel-size; one per node on slurm). Defaults to 1. */
    pipelineParallel: int(1, 1024, 2).default(1),
    /** Fraction of each GPU's memory vLLM may use. Defaults to 0.9. */
    gpuMemoryUtilization: withNumbers(
      z.number().gt(0, "must be above 0 -> e.g. 0.85").max(1, "is a fraction of total GPU memory: at most 1 -> e.g. 0.85 for 85 %"),
    ).default(0.9),
    /** Context length: tokens (4096, "32k") or auto (90 % of the largest that fits). Defaults to auto. */
    maxModelLen: maxModelLen.default("auto"),
    /** Requests batched at once (vLLM --max-num-seqs). Defaults to vLLM's default for the GPU size. */
    maxNumSeqs: int(1, 1_000_000, 16).optional(),
    /** Tokens per scheduler step (vLLM --max-num-batched-tokens). Defaults to vLLM's default for the GPU size. */
    maxNumBatchedTokens: int(1, 100_000_000, 8192).optional(),
    /** Bind address: an IP or host name. Defaults to 127.0.0.1, which keeps the API off the network; reach it with `ssh -L`. */
    bindHost: hostName().default("127.0.0.1"),
    /** TCP port of the API. Defaults to 8000. */
    port: port.default(8000),
    /** Name clients use as `model`. Defaults to model.id. */
    servedModelName: servedName().optional(),
    /** vLLM tool call parser (hermes, llama3_json, openai, ...). Defaults to none. */
    toolCallParser: text({ max: 64, chars: /[a-z0-9_-]/, charsHint: "lowercase letters, digits, _ and -" }).optional(),
    /** Let the model decide to call tools (needs toolCallParser). Defaults to false. */
    enableAutoToolChoice: bool().default(false),
    /** generate: a random key kept as a Pulumi secret; config: the secret key `apiKey`; none: no auth. Defaults to generate. */
    apiKey: ApiKeyPolicy.default("generate"),
    /** Skip CUDA graphs (vLLM --enforce-eager). Defaults to false. */
    enforceEager: bool().default(false),
    /** Extra `vllm serve` arguments, checked against the pinned version's removed flags. No secrets, no flags that config keys set. Defaults to []. */
    extraArgs: z.array(text({ max: 1024, leadingDash: true, empty: true })).default([]),
  })
  .superRefine((s, ctx) => {
    if (s.enableAutoToolChoice && !s.toolCallParser) {
      ctx.addIssue({
        code: "custom",
        path: ["toolCallParser"],
        message: "enableAutoToolChoice needs a parser -> set serving.toolCallParser (hermes for Qwen, llama3_json for Llama 3.1, openai for gpt-oss)",
      });
    }
    for (const [i, message] of extraArgsProblems(s.extraArgs)) {
      ctx.addIssue({ code: "custom", path: i === undefined ? ["extraArgs"] : ["extraArgs", i], message });
    }
    const bind = effectiveBindHost(s);
    if (s.apiKey === "none" && !LOOPBACK.includes(bind)) {
      ctx.addIssue({
        code: "custom",
        path: ["apiKey"],
        message: `an unauthenticated server bound to ${isHostOrIp(bind) ? bind : "that address"} is open to the network -> use apiKey: generate, or bindHost: 127.0.0.1 and an SSH tunnel`,
      });
    }
  });

// ---- vllm -----------------------------------------------------------------

/** How a login to the package index is given: a secret, never part of the URL. */
export const INDEX_CREDENTIALS_FIX = "`pulumi config set --secret indexCredentials '<user>:<password>'`";

/** A URL of a package index or wheel directory: https, no credentials (they would sit in plain state and `ps`: the secret indexCredentials holds them). */
const indexUrl = text({
  max: 2048,
  chars: /[A-Za-z0-9._~:\/?#\[\]@!&()*+,;=%-]/,
  charsHint: "the characters of a URL",
  check: (u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      return "is not a URL -> e.g. https://pypi.org/simple";
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return "must be an https:// URL -> e.g. https://pypi.org/simple";
    if (url.username || url.password) {
      url.username = "";
      url.password = "";
      return `holds credentials; a URL is kept in plain state and shows in \`ps\` on the host -> set it without them (${url.toString()}) and run ${INDEX_CREDENTIALS_FIX}`;
    }
    return undefined;
  },
});

export const Vllm = z
  .strictObject({
    /** The pinned vLLM release. Flags are checked against it. Required. */
    version: z.string().max(64, "is too long -> pin one from pypi.org/project/vllm/#history").refine(isVllmVersion, "must be a vLLM release as PyPI numbers it, like 0.11.0, 0.10.1.1 or 0.8.5.post1 -> pin one from pypi.org/project/vllm/#history"),
    /** Python of the venv (uv finds or installs it). Defaults to 3.12. */
    python: z.string().regex(/^3\.\d{1,3}$/, "must be a Python minor version like 3.12 -> quote it in YAML (\"3.10\" is not 3.1)").default("3.12"),
    /** uv release used to make the venv. Defaults to 0.13.9. */
    uvVersion: z.string().regex(/^\d{1,4}\.\d{1,4}\.\d{1,4}$/, "must be an exact uv release like 0.13.9 -> pin one").default("0.13.9"),
    /** Pip requirement to install; `{version}` is replaced by `version`. Defaults to vllm=={version}. */
    package: text({
      max: 256,
      chars: /[A-Za-z0-9._\[\],=<>!~{}*+-]/,
      charsHint: "the characters of a requirement like vllm[audio]=={version}",
      check: (p) => (/^[A-Za-z0-9]/.test(p) ? undefined : "must start with a package name -> e.g. vllm=={version}"),
    }).default("vllm=={version}"),
    /** Distribution that must report `version` after install (differs only for a stand-in). Defaults to vllm. */
    distName: text({ max: 128, chars: /[A-Za-z0-9._-]/, charsHint: "letters, digits and . _ -" }).default("vllm"),
    /** Module that must import after install. Defaults to vllm. */
    importName: text({
      max: 128,
      chars: /[A-Za-z0-9_.]/,
      charsHint: "letters, digits, _ and .",
      check: (n) => (/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(n) ? undefined : "is not a Python module name -> e.g. vllm"),
    }).default("vllm"),
    /** A directory of wheels on the host (offline installs, the test stand-in), an absolute path. Defaults to none. */
    findLinks: hostPath().optional(),
    /** Install from findLinks only, never from an index. Defaults to false. */
    noIndex: bool().default(false),
    /** Package index (a site mirror on HPC): https, without credentials (a login goes in the secret indexCredentials). Defaults to https://pypi.org/simple. */
    indexUrl: indexUrl.default("https://pypi.org/simple"),
    /** Accept an http:// indexUrl: anyone on the path can then swap the packages installed. Defaults to false. */
    allowInsecureIndex: bool().default(false),
    /**
     * Single host: how many versioned venvs (one per vLLM release and Python) are kept, counting the one installed
     * last; older ones pulumi-vllm made are removed. The venv the server runs is always kept. Defaults to 2.
     */
    keepVenvs: int(1, 100, 2).default(2),
  })
  .superRefine((v, ctx) => {
    if (v.indexUrl.startsWith("http://") && !v.allowInsecureIndex) {
      ctx.addIssue({
        code: "custom",
        path: ["indexUrl"],
        message:
          "is http://: anyone on the network path can swap the packages (and the hashes checked against the same server) -> use the index's https:// URL, or vllm.allowInsecureIndex: true if you accept the risk",
      });
    }
  });

// ---- host -----------------------------------------------------------------

const swapPath = hostPath({ ownDir: true });

export const Swap = z.discriminatedUnion("mode", [
  z.strictObject({
    /** auto: a swapfile as large as the plan needs. */
    mode: z.literal("auto"),
    /** The swapfile. Defaults to /swapfile. */
    path: swapPath.default("/swapfile"),
  }),
  z.strictObject({
    /** size: a swapfile of sizeGiB. */
    mode: z.literal("size"),
    /** Size of the swapfile in GiB. Required. */
    sizeGiB: real({ gt: 0, max: 16384, example: 16 }),
    /** The swapfile. Defaults to /swapfile. */
    path: swapPath.default("/swapfile"),
  }),
  z.strictObject({
    /** off: no swapfile (one this project made is removed). */
    mode: z.literal("off"),
  }),
]);

// /etc/default/earlyoom is also read by /bin/sh: the earlyoom step refuses
// what the shell would expand, so preview refuses it first.
const earlyoomRegex = text({
  max: 512,
  leadingDash: true,
  empty: true,
  check: (r) =>
    !/^[\][A-Za-z0-9_.|()^$*+?{}:/,=!<>@#&;~-]*$/.test(r)
      ? "may not hold quotes, backslashes, backticks, % or whitespace (/bin/sh reads it) -> use . for a literal dot"
      : /[$][^)|]/.test(r)
        ? "may have `$` only at the end or before `)` or `|` -> move it"
        : undefined,
});

export const EarlyOom = z.strictObject({
  /** Install and configure EarlyOOM. Defaults to true. */
  enabled: bool().default(true),
  /** Kill when available RAM drops below this percent (earlyoom -m). Defaults to 5 (seed 000). */
  memPercent: real({ min: 1, max: 50, example: 5 }).default(5),
  /** ... and free swap below this percent (earlyoom -s). Defaults to 10. */
  swapPercent: real({ min: 1, max: 100, example: 10 }).default(10),
  /** Process names (/proc/PID/comm, 15 characters) EarlyOOM spares. Defaults to sshd, shells, systemd, dbus. */
  avoid: earlyoomRegex.default("^(sshd|ssh|bash|zsh|systemd|systemd-journal|dbus-daemon)$"),
  /** Process names it kills first: vLLM's server, its workers (VLLM::Worker...), Python, Ray. Defaults to those. */
  prefer: earlyoomRegex.default("^(vllm|python3?(.[0-9]+)?|VLLM.*|ray.*)$"),
});

const ENV_TOTAL = 8192;

export const Host = z
  .strictObject({
    /** The swapfile: {mode: auto}, {mode: size, sizeGiB}, {mode: off}. Defaults to {mode: auto, path: /swapfile}. */
    swap: Swap.default({ mode: "auto", path: "/swapfile" }),
    /** EarlyOOM settings. Defaults to enabled, -m 5 -s 10, preferring vLLM. */
    earlyoom: EarlyOom.default(EarlyOom.parse({})),
    /** apt packages beyond the JIT toolchain (build-essential python3-dev libnuma-dev pkg-config). Defaults to []. */
    extraPackages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]{1,127}$/, "is not a Debian package name -> e.g. nvtop")).default([]),
    /** Seconds a step waits for a held dpkg lock. Defaults to 600. */
    aptLockTimeoutSeconds: int(1, 86400, 600).default(600),
    /**
     * The path the unit runs vLLM from (`<venvPath>/bin/vllm`): a link to the versioned venv of the running release,
     * switched by the launch step. (Releases before versioned venvs installed into a venv here; the first up replaces
     * it by the link.) Defaults to /opt/pulumi-vllm/venv.
     */
    venvPath: hostPath({ ownDir: true }).default("/opt/pulumi-vllm/venv"),
    /** Where each vLLM release gets a venv of its own, `<venvsDir>/<version>-py<python>`. Defaults to /opt/pulumi-vllm/venvs. */
    venvsDir: hostPath({ ownDir: true }).default("/opt/pulumi-vllm/venvs"),
    /** HF_HOME on the host: model weights land here and are kept on destroy. Defaults to /var/cache/pulumi-vllm/huggingface. */
    cacheDir: hostPath({ ownDir: true }).default("/var/cache/pulumi-vllm/huggingface"),
    /**
     * Destroy (and a change of model) removes the models the weights step downloaded into cacheDir; models that were
     * there before are never removed. Defaults to false (weights are costly to fetch again: destroy keeps them).
     */
    removeModelCache: bool().default(false),
    /** The systemd service running vLLM. Defaults to vllm.service. */
    unitName: unitName().default("vllm.service"),
    /**
     * The system user vLLM runs as (never root): made by the launch step (in the video and render groups
     * when the host has them, owning host.cacheDir), removed by destroy if pulumi-vllm made it. Defaults to vllm.
     */
    serviceUser: serviceUserName().default("vllm"),
    /**
     * What pulumi-vllm may take over when the host already has it and pulumi-vllm did not make it:
     * `unit` (a service named host.unitName; destroy puts the original back), `swap` (a swap file of another size at host.swap.path; resized,
     * destroy leaves it), `user` (an account named host.serviceUser; destroy leaves it, out of the GPU
     * groups it was put in). Anything else that is there is refused, never overwritten. Defaults to [].
     */
    adopt: z.array(z.enum(["unit", "venv", "swap", "user"])).default([]),
    /** Minutes `pulumi up` waits for /health and /v1/models: loading and compiling (the weights step downloads before). Defaults to 60 (seed 001's rig needed ~45). */
    readinessTimeoutMinutes: real({ gt: 0, max: 10080, example: 60 }).default(60),
    /** Non-secret environment for the server, merged over the rendered one. No credentials (they are secret config). Defaults to {}. */
    env: z.record(envName(), text({ max: 4096, empty: true, leadingDash: true })).default({}),
  })
  .superRefine((h, ctx) => {
    const within = (a: string, b: string) => a === b || a.startsWith(`${b}/`);
    // (a path refused on its own, e.g. /opt, is not reported twice)
    const own = (p: string) => p.split("/").length > 2;
    if (own(h.venvPath) && own(h.venvsDir) && (within(h.venvPath, h.venvsDir) || within(h.venvsDir, h.venvPath))) {
      ctx.addIssue({ code: "custom", path: ["venvsDir"], message: `and host.venvPath (${h.venvPath}) overlap: venvPath is a link to one of the venvs in venvsDir -> give them separate paths, e.g. /opt/pulumi-vllm/venv and /opt/pulumi-vllm/venvs` });
    }
    if (h.adopt.includes("venv")) {
      ctx.addIssue({ code: "custom", path: ["adopt"], message: "lists 'venv', which no longer applies on a single host: each vLLM release gets a venv of its own in host.venvsDir and host.venvPath is a link to it -> remove 'venv' from host.adopt (and move a venv of yours away from host.venvPath)" });
    }
    for (const name of Object.keys(h.env)) {
      if (isSecretEnvName(name)) {
        const fix =
          name === "VLLM_API_KEY"
            ? "use serving.apiKey: generate, or `pulumi config set --secret apiKey <key>` with serving.apiKey: config"
            : /^(HF_TOKEN|HUGGING_?FACE_HUB_TOKEN|HF_HUB_TOKEN)$/.test(name)
              ? "run `pulumi config set --secret hfToken <token>`"
              : "keep credentials out of plain config (it is stored in clear in Pulumi.<stack>.yaml, the state and the unit file); this project passes only apiKey and hfToken as secrets";
        ctx.addIssue({ code: "custom", path: ["env", name], message: `${name} holds a credential and plain config is stored in clear -> remove it from host.env and ${fix}` });
      }
    }
    const total = Object.entries(h.env).reduce((n, [k, v]) => n + k.length + v.length + 1, 0);
    if (total > ENV_TOTAL) ctx.addIssue({ code: "custom", path: ["env"], message: `holds ${total} characters, more than the ${ENV_TOTAL} allowed in all -> keep host.env short` });
  });

export const Nccl = z.strictObject({
  /** NCCL_P2P_DISABLE. Defaults to on for pcie-x1-riser (seed 001), else off. */
  p2pDisable: bool().optional(),
  /** NCCL_IB_DISABLE. Defaults to on for pcie-x1-riser and single hosts. */
  ibDisable: bool().optional(),
  /** NCCL_SOCKET_IFNAME: interfaces NCCL (and Ray) use, e.g. ib0, ^docker,lo. Defaults to NCCL's choice. */
  socketIfname: text({ max: 256, chars: /[A-Za-z0-9_.:,^=-]/, charsHint: "letters, digits and _ . : , ^ = -" }).optional(),
  /** NCCL_IB_TIMEOUT (1-31). Defaults to NCCL's. */
  ibTimeout: int(1, 31, 22).optional(),
  /** NCCL_DEBUG level. Defaults to unset. */
  debug: z.enum(["VERSION", "WARN", "INFO", "TRACE"]).optional(),
  /** TORCH_NCCL_BLOCKING_WAIT=1. Defaults to false. */
  blockingWait: bool().default(false),
});

// ---- slurm ----------------------------------------------------------------

// Shared paths end up inside the batch script and srun command lines: plain absolute paths only.
const sharedPath = hostPath({ ownDir: true });

/** sbatch options the config sets itself: given again in extraSbatch, the later line would silently win. */
const MANAGED_SBATCH: Record<string, string> = {
  "--job-name": "slurm.jobName",
  "--partition": "slurm.partition",
  "--account": "slurm.account",
  "--qos": "slurm.qos",
  "--time": "slurm.timeLimit",
  "--nodes": "slurm.nodes",
  "--ntasks-per-node": "slurm.nodes (one task per node)",
  "--gpus-per-node": "slurm.gpusPerNode",
  "--cpus-per-task": "slurm.cpusPerTask",
  "--mem-per-gpu": "slurm.memPerGpu",
  "--output": "slurm.logDir",
  "--error": "slurm.logDir",
};

export const Slurm = z
  .strictObject({
    /** Partition (or comma-separated partitions) the job runs in; `sinfo` lists them. Required. */
    partition: slurmName({ list: true, max: 256 }),
    /** Account charged (sbatch --account). Defaults to the user's default account. */
    account: slurmName().optional(),
    /** Quality of service (sbatch --qos). Defaults to the partition's. */
    qos: slurmName().optional(),
    /** sbatch --time, e.g. 12:00:00 or 1-00:00:00. Defaults to 12:00:00. */
    timeLimit: z.string().regex(/^(\d{1,4}-)?\d{1,2}:\d{2}:\d{2}$|^\d{1,7}$/, "must be HH:MM:SS, D-HH:MM:SS or minutes -> e.g. 12:00:00").default("12:00:00"),
    /** Nodes of the job. Defaults to 1. */
    nodes: int(1, 1024, 2).default(1),
    /** GPUs per node (equal to hardware.gpuCount). Required. */
    gpusPerNode: int(1, 64, 4),
    /** CPUs of the one task per node. Defaults to 16. */
    cpusPerTask: int(1, 4096, 16).default(16),
    /** sbatch --mem-per-gpu, e.g. 64G. Defaults to the partition's. */
    memPerGpu: z.string().regex(/^\d{1,9}[KMGT]?$/, "must be like 64G -> e.g. 64G").optional(),
    /** `module load` names run before the launch, one per entry, e.g. ["CUDA/12.4"]. Defaults to []. */
    modules: z
      .array(text({ max: 128, chars: /[A-Za-z0-9_.\/+@:-]/, charsHint: "letters, digits and _ . / + @ : - (one module per list entry)" }))
      .default([]),
    /** The venv on the shared filesystem (seen by login and compute nodes). Required. */
    sharedVenvPath: sharedPath,
    /** Cache (HF_HOME, uv, job state) on the shared filesystem. Required. */
    sharedCacheDir: sharedPath,
    /** Job logs on the shared filesystem. Required. */
    logDir: sharedPath,
    /** Directory of the 0600 secrets file, readable by you alone. Defaults to <sharedCacheDir>/secrets. */
    secretsDir: sharedPath.optional(),
    /** Job name; also names the script, secrets and state files. Defaults to pulumi-vllm. */
    jobName: jobName().default("pulumi-vllm"),
    /**
     * Multi-node launch: native (vllm --nnodes, vLLM 0.11.1+) or ray (only for vLLM releases before 0.11.1,
     * which lack native). Defaults to native where the pinned version has it, else ray.
     */
    launcher: z.enum(["ray", "native"]).optional(),
    /** Port of the Ray head (ray launcher only). Defaults to 6379. */
    rayPort: port.default(6379),
    /** Minutes a job may pend before `pulumi up` gives up (and cancels it). Defaults to 30. */
    pendingTimeoutMinutes: real({ gt: 0, max: 10080, example: 30 }).default(30),
    /** More sbatch options, e.g. ["--constraint=a100"]: no quotes, spaces or shell characters. Defaults to []. */
    extraSbatch: z
      .array(
        text({
          max: 256,
          leadingDash: true,
          check: (o) =>
            !/^--[a-z][a-z-]*(=[A-Za-z0-9_.,:=\/@+%*!&|\[\]()-]+)?$/.test(o)
              ? "must be one sbatch option like --constraint=a100 (no quotes, spaces, $, ` or ;) -> e.g. --constraint=a100&ib"
              : MANAGED_SBATCH[o.split("=", 1)[0]]
                ? `is set from ${MANAGED_SBATCH[o.split("=", 1)[0]]} -> set that key instead`
                : undefined,
        }),
      )
      .default([]),
  })
  .superRefine((s, ctx) => {
    if (s.secretsDir && worldWritableLooking(s.secretsDir)) {
      ctx.addIssue({
        code: "custom",
        path: ["secretsDir"],
        message: "is in a directory every user may write to, where another user can replace or read the secrets file -> use a directory of your own, e.g. <sharedCacheDir>/secrets (the default)",
      });
    }
  });

// ---- the whole stack ------------------------------------------------------

const common = {
  connection: Connection,
  hardware: Hardware,
  model: Model,
  serving: Serving.default(Serving.parse({})),
  vllm: Vllm,
  host: Host.default(Host.parse({})),
  nccl: Nccl.default(Nccl.parse({})),
};

export const SingleStack = z.strictObject({ topology: z.literal("single"), ...common });
export const SlurmStack = z.strictObject({ topology: z.literal("slurm"), ...common, slurm: Slurm });

/** vLLM's native multi-node launch (--nnodes/--node-rank/--headless) exists from this release on. */
export const NATIVE_MULTINODE_SINCE = "0.11.1";

function versionAtLeast(v: string, min: string): boolean {
  const a = v.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
}

/** The launcher a slurm stack uses: the configured one, else native where the version has it. */
export function defaultLauncher(vllmVersion: string): "ray" | "native" {
  return versionAtLeast(vllmVersion, NATIVE_MULTINODE_SINCE) ? "native" : "ray";
}

const StackUnion = z
  .discriminatedUnion("topology", [SingleStack, SlurmStack], {
    error: "must be `single` (one host: a rig, a workstation) or `slurm` (a cluster through its login node) -> set topology",
  })
  .superRefine((c, ctx) => {
    const s = c.serving;
    const gpusAvailable = c.topology === "slurm" ? c.slurm.nodes * c.slurm.gpusPerNode : c.hardware.gpuCount;
    const gpusUsed = s.tensorParallel * s.pipelineParallel;
    if (gpusAvailable >= 1 && gpusUsed > gpusAvailable) {
      ctx.addIssue({
        code: "custom",
        path: ["serving", "tensorParallel"],
        message: `tensorParallel x pipelineParallel = ${gpusUsed} GPUs but only ${gpusAvailable} are there -> lower them so their product is at most ${gpusAvailable}`,
      });
    }
    if (c.topology === "slurm" && c.slurm.gpusPerNode !== c.hardware.gpuCount) {
      ctx.addIssue({
        code: "custom",
        path: ["hardware", "gpuCount"],
        message: `hardware.gpuCount (${c.hardware.gpuCount}) describes one node and must equal slurm.gpusPerNode (${c.slurm.gpusPerNode}) -> make them equal`,
      });
    }
    if (c.topology === "slurm" && c.slurm.nodes > 1 && gpusUsed !== gpusAvailable) {
      ctx.addIssue({
        code: "custom",
        path: ["serving", "pipelineParallel"],
        message: `a ${c.slurm.nodes}-node job must use all ${gpusAvailable} GPUs (tensorParallel x pipelineParallel is ${gpusUsed}) -> set tensorParallel ${c.slurm.gpusPerNode} and pipelineParallel ${c.slurm.nodes}, or fewer nodes`,
      });
    }
    if (c.serving.apiKey === "none" && c.topology === "slurm") {
      ctx.addIssue({
        code: "custom",
        path: ["serving", "apiKey"],
        message: "a server on a shared cluster node is reachable by every cluster user -> use apiKey: generate",
      });
    }
    if (c.topology === "slurm" && c.slurm.launcher === "ray" && defaultLauncher(c.vllm.version) === "native") {
      ctx.addIssue({
        code: "custom",
        path: ["slurm", "launcher"],
        message: `ray starts an unauthenticated Ray cluster that every cluster user can run code in, as you; vLLM ${c.vllm.version} has the native multi-node launcher -> remove slurm.launcher (native is the default from vLLM ${NATIVE_MULTINODE_SINCE}) or set it to native`,
      });
    }
    if (c.topology === "slurm") {
      const secretsDir = c.slurm.secretsDir ?? `${c.slurm.sharedCacheDir}/secrets`;
      if (secretsDir === c.slurm.logDir) {
        ctx.addIssue({ code: "custom", path: ["slurm", "secretsDir"], message: "is the log directory -> keep the secrets file apart from the logs (remove secretsDir for the default)" });
      }
    }
  });

/** The validated stack config (slurm.launcher resolved to the one that runs). */
export const StackConfig = StackUnion.transform((c) =>
  c.topology === "slurm" ? { ...c, slurm: { ...c.slurm, launcher: c.slurm.launcher ?? defaultLauncher(c.vllm.version) } } : c,
);

export type StackConfig = z.infer<typeof StackConfig>;
export type SingleStackConfig = Extract<StackConfig, { topology: "single" }>;
export type SlurmStackConfig = Extract<StackConfig, { topology: "slurm" }>;
export type ModelConfig = z.infer<typeof Model>;
export type ServingConfig = z.infer<typeof Serving>;
export type HardwareConfig = z.infer<typeof Hardware>;

/** Secret config keys, read as Pulumi secrets, never part of StackConfig. */
export const SECRET_KEYS = ["sshPrivateKey", "hfToken", "apiKey", "indexCredentials"] as const;
/** The top-level keys a stack may set under the project namespace. */
export const TOP_LEVEL_KEYS = ["topology", ...Object.keys(common), "slurm", ...SECRET_KEYS] as const;
