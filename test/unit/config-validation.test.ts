// Types as Pulumi delivers them, secrets kept out of plain config, and the
// guards against an open or hijackable server.
import { ConfigError } from "../../components/config/errors";
import { decodeEngineConfig, indexCredentialsProblem, parseStackConfig } from "../../components/config/load";
import { effectiveBindHost } from "../../components/config/schema";
import { describeValue, isSecretEnvName } from "../../components/config/strings";
import { makePlan } from "../../components/plan/plan";

const base = (): Record<string, any> => ({
  topology: "single",
  connection: { host: "10.0.0.5", privateKeyPath: "~/.ssh/id", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Q" },
  hardware: { gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 },
  model: { id: "Qwen/Qwen2.5-7B-Instruct" },
  serving: {},
  vllm: { version: "0.11.0" },
  host: {},
});
function problems(v: Record<string, unknown>): string[] {
  try {
    parseStackConfig(v, "test");
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
}
const only = (v: Record<string, unknown>) => {
  const p = problems(v);
  expect(p).toHaveLength(1);
  return p[0];
};

describe("numbers and booleans given as strings (pulumi config set --path)", () => {
  test("strings that spell numbers and booleans are read as such", () => {
    const v = base();
    v.serving = { gpuMemoryUtilization: "0.85", maxModelLen: "4096", port: "8080", enforceEager: "true", maxNumSeqs: "16", tensorParallel: "1" };
    v.hardware = { gpuCount: "1", gpuMemoryGiB: "24", hostRamGiB: "64", freeDiskGiB: "500", gpuMemoryInUseGiB: "0.5" };
    v.host = { swap: { mode: "size", sizeGiB: "8" }, earlyoom: { enabled: "false" } };
    const { config } = parseStackConfig(v, "t");
    expect(config.serving).toMatchObject({ gpuMemoryUtilization: 0.85, maxModelLen: 4096, port: 8080, enforceEager: true, maxNumSeqs: 16 });
    expect(config.hardware).toMatchObject({ gpuCount: 1, gpuMemoryGiB: 24, gpuMemoryInUseGiB: 0.5 });
    expect(config.host.swap).toEqual({ mode: "size", sizeGiB: 8, path: "/swapfile" });
    expect(config.host.earlyoom.enabled).toBe(false);
    expect(makePlan({ config, secretsPresent: new Set() }).launch.argv.join(" ")).toContain("--gpu-memory-utilization 0.85 --max-model-len 4096");
  });
  test("what the engine hands over for `pulumi config set --path pulumi-vllm:serving.gpuMemoryUtilization 0.85` plans", () => {
    const { values } = decodeEngineConfig({
      "pulumi-vllm:topology": "single",
      "pulumi-vllm:connection": JSON.stringify(base().connection),
      "pulumi-vllm:hardware": JSON.stringify(base().hardware),
      "pulumi-vllm:model": JSON.stringify(base().model),
      "pulumi-vllm:vllm": JSON.stringify(base().vllm),
      "pulumi-vllm:serving": '{"gpuMemoryUtilization":"0.85","maxModelLen":"8192"}',
    });
    expect(parseStackConfig(values, "t").config.serving.gpuMemoryUtilization).toBe(0.85);
  });
  test.each([
    ["serving.gpuMemoryUtilization", (v: any) => (v.serving.gpuMemoryUtilization = "abc"), "serving.gpuMemoryUtilization: expected a number, got the string 'abc' -> give a number"],
    ["serving.enforceEager", (v: any) => (v.serving.enforceEager = "yes"), "serving.enforceEager: expected a boolean, got the string 'yes' -> give a boolean (true or false)"],
    ["serving.port", (v: any) => (v.serving.port = [8000]), "serving.port: expected a number, got a list -> give a number"],
    ["connection.user", (v: any) => (v.connection.user = 12345), "connection.user: expected a string, got a number -> give a string (quote it in YAML)"],
    ["vllm.python", (v: any) => (v.vllm.python = 3.1), "vllm.python: expected a string, got a number -> give a string (quote it in YAML)"],
    ["serving", (v: any) => (v.serving = "fast"), "serving: expected an object, got the string 'fast' -> give an object"],
    ["hardware.gpuMemoryGiB", (v: any) => (v.hardware.gpuMemoryGiB = null), "hardware.gpuMemoryGiB: expected a number, got null -> give a number"],
    ["hardware.hostRamGiB", (v: any) => (v.hardware.hostRamGiB = Number.NaN), "hardware.hostRamGiB: expected a number, got a non-finite number -> give a number"],
  ])("a wrong type says what it got: %s", (_key, patch, message) => {
    const v = base();
    patch(v);
    expect(only(v).startsWith(message)).toBe(true);
  });
  test("a missing key is still `is required`", () => {
    const v = base();
    delete v.hardware.gpuMemoryGiB;
    expect(only(v)).toBe("hardware.gpuMemoryGiB: is required -> set hardware.gpuMemoryGiB (a number)");
  });
  test("a long string given for a number is described, not echoed (it may be a token pasted in the wrong place)", () => {
    const v = base();
    v.serving.port = "hf_SUPERSECRETTOKEN0123456789";
    const p = only(v);
    expect(p).toBe("serving.port: expected a number, got a string of 29 characters -> give a number (e.g. 0.85 or 4096; a string that spells a number is read as one)");
    expect(describeValue("$(x)")).toBe("a string of 4 characters");
  });
  test.each([
    ["0", /^serving.maxModelLen: must be at least 1 token -> /],
    [0, /^serving.maxModelLen: must be at least 1 token -> /],
    [-4096, /^serving.maxModelLen: must be at least 1 token -> /],
    ["0k", /^serving.maxModelLen: expected a number of tokens or auto, got the string '0k' -> /],
    [1.5, /^serving.maxModelLen: must be a whole number of tokens -> /],
    ["lots", /^serving.maxModelLen: expected a number of tokens or auto, got the string 'lots' -> /],
    [1e12, /^serving.maxModelLen: must be at most \d+ tokens -> /],
  ])("maxModelLen %p is refused with what to do", (len, message) => {
    const v = base();
    v.serving.maxModelLen = len;
    expect(only(v)).toMatch(message);
  });
  test("nonsense hardware: 0 GPUs, GPU memory in use beyond the GPU; no NaN in any message", () => {
    const v = base();
    v.hardware.gpuCount = 0;
    expect(problems(v)).toEqual(["hardware.gpuCount: must be at least 1 -> e.g. 1"]);
    const w = base();
    w.hardware.gpuMemoryInUseGiB = 24;
    expect(only(w)).toMatch(/^hardware.gpuMemoryInUseGiB: other processes cannot hold 24 GiB of a 24 GiB GPU -> /);
    const x = base();
    x.hardware = { gpuCount: "x", gpuMemoryGiB: "y", hostRamGiB: "z", freeDiskGiB: -1 };
    for (const p of problems(x)) expect(p).not.toMatch(/NaN|undefined/);
  });
});

describe("secrets stay secrets", () => {
  test.each([
    ["HF_TOKEN", /pulumi config set --secret hfToken/],
    ["HUGGING_FACE_HUB_TOKEN", /pulumi config set --secret hfToken/],
    ["VLLM_API_KEY", /pulumi config set --secret apiKey/],
    ["WANDB_API_KEY", /keep credentials out of plain config/],
    ["AWS_SECRET_ACCESS_KEY", /keep credentials out of plain config/],
  ])("host.env %s is refused with the fix", (name, fix) => {
    const v = base();
    v.host.env = { [name]: "hf_value_that_must_not_show" };
    const p = only(v);
    expect(p).toMatch(new RegExp(`^host.env.${name}: ${name} holds a credential and plain config is stored in clear -> remove it from host.env and `));
    expect(p).toMatch(fix);
    expect(p).not.toContain("hf_value_that_must_not_show");
  });
  test("names that only look alike pass (TOKENIZERS_PARALLELISM, VLLM_MAX_TOKENS_PER_BATCH)", () => {
    expect(isSecretEnvName("TOKENIZERS_PARALLELISM")).toBe(false);
    expect(isSecretEnvName("VLLM_MAX_TOKENS_PER_BATCH")).toBe(false);
    expect(isSecretEnvName("HF_HUB_ENABLE_HF_TRANSFER")).toBe(false);
    const v = base();
    v.host.env = { TOKENIZERS_PARALLELISM: "false" };
    expect(problems(v)).toEqual([]);
  });
  test.each([
    [["--api-key", "sk-123"], "serving.extraArgs.0: --api-key would put the API key into argv, the unit file and plain state -> remove it and use serving.apiKey: generate, or `pulumi config set --secret apiKey <key>`"],
    [["--api-key=sk-123"], "serving.extraArgs.0: --api-key would put"],
    [["--api-k", "sk-123"], "serving.extraArgs.0: --api-key would put"],
    [["--hf-token", "hf_x"], "serving.extraArgs.0: --hf-token would put the token into argv, the unit file and plain state -> remove it and run `pulumi config set --secret hfToken <token>`"],
  ])("extraArgs %p is refused with the fix", (args, message) => {
    const v = base();
    v.serving.extraArgs = args;
    const p = only(v);
    expect(p.startsWith(message)).toBe(true);
    expect(p).not.toMatch(/sk-123|hf_x/);
  });
  test("an index URL with credentials is refused without echoing them", () => {
    const v = base();
    v.vllm.indexUrl = "https://user:s3cr3tpass@mirror.example.org/simple";
    const p = only(v);
    expect(p).toMatch(/^vllm.indexUrl: holds credentials; .* -> set it without them \(https:\/\/mirror.example.org\/simple\) and run `pulumi config set --secret indexCredentials/);
    expect(p).not.toContain("s3cr3tpass");
  });
  test("an http index needs allowInsecureIndex, and then warns", () => {
    const v = base();
    v.vllm.indexUrl = "http://mirror.example.org/simple";
    expect(only(v)).toMatch(/^vllm.indexUrl: is http:\/\/: .* -> use the index's https:\/\/ URL, or vllm.allowInsecureIndex: true/);
    v.vllm.allowInsecureIndex = true;
    const plan = makePlan(parseStackConfig(v, "t"));
    expect(plan.warnings.join("\n")).toMatch(/^vllm.indexUrl: packages come over plain http/m);
  });
});

describe("guards", () => {
  test("apiKey none with --host 0.0.0.0 in extraArgs is refused: the flag, and the open server", () => {
    const v = base();
    v.serving = { apiKey: "none", extraArgs: ["--host", "0.0.0.0"] };
    const p = problems(v);
    expect(p).toContain("serving.extraArgs.0: --host is set from serving.bindHost -> remove it from extraArgs and set serving.bindHost");
    expect(p).toContain("serving.apiKey: an unauthenticated server bound to 0.0.0.0 is open to the network -> use apiKey: generate, or bindHost: 127.0.0.1 and an SSH tunnel");
    expect(effectiveBindHost({ bindHost: "127.0.0.1", extraArgs: ["--host=::"] })).toBe("::");
  });
  test("bindHost must be an address or host name", () => {
    const v = base();
    v.serving.bindHost = "0.0.0.0 --api-key x";
    expect(only(v)).toMatch(/^serving.bindHost: may hold only .* not a space -> remove it$/);
  });
  test("trustRemoteCode needs a pinned commit or an acknowledgement, and always warns", () => {
    const v = base();
    v.model.trustRemoteCode = true;
    expect(only(v)).toMatch(/^model.trustRemoteCode: runs the model repository's Python code.* -> set model.revision to a commit hash \(40 hex digits\)/);
    v.model.revision = "main";
    expect(problems(v)).toHaveLength(1);
    v.model.revision = "0123456789abcdef0123456789abcdef01234567";
    const pinned = makePlan(parseStackConfig(v, "t"));
    expect(pinned.warnings.join("\n")).toMatch(/model.trustRemoteCode: vLLM runs the Python code of .* at commit 0123456789ab/);
    expect(pinned.launch.argv).toEqual(expect.arrayContaining(["--revision", "0123456789abcdef0123456789abcdef01234567", "--trust-remote-code"]));
    delete v.model.revision;
    v.model.acknowledgeRemoteCode = true;
    expect(makePlan(parseStackConfig(v, "t")).warnings.join("\n")).toMatch(/-> pin model.revision to a commit you reviewed/);
  });
  test("--trust-remote-code in extraArgs cannot bypass the guard", () => {
    const v = base();
    v.serving.extraArgs = ["--trust-remote-code"];
    expect(only(v)).toMatch(/^serving.extraArgs.0: --trust-remote-code is set from model.trustRemoteCode/);
  });
  test("removeModelCache: true and false are both accepted (the weights step removes what it downloaded)", () => {
    const v = base();
    v.host.removeModelCache = true;
    expect(problems(v)).toEqual([]);
    v.host.removeModelCache = "yes";
    expect(only(v)).toMatch(/^host.removeModelCache: /);
  });
  test("versioned venvs: keepVenvs is a whole number from 1 (a string is read as one), venvsDir apart from venvPath, 'venv' no longer adoptable", () => {
    const v = base();
    expect(parseStackConfig(v, "t").config.vllm.keepVenvs).toBe(2);
    expect(parseStackConfig(v, "t").config.host).toMatchObject({ venvPath: "/opt/pulumi-vllm/venv", venvsDir: "/opt/pulumi-vllm/venvs" });
    v.vllm.keepVenvs = "3";
    expect(parseStackConfig(v, "t").config.vllm.keepVenvs).toBe(3);
    for (const bad of [0, 1.5, -1, "two"]) {
      v.vllm.keepVenvs = bad;
      expect(only(v)).toMatch(/^vllm.keepVenvs: .* -> /);
    }
    v.vllm.keepVenvs = 1;
    v.host.venvsDir = "/opt/pulumi-vllm/venv/versions";
    expect(only(v)).toMatch(/^host.venvsDir: and host.venvPath \(\/opt\/pulumi-vllm\/venv\) overlap: .* -> give them separate paths/);
    v.host.venvsDir = "/srv/vllm/venvs";
    v.host.venvPath = "/srv/vllm/venvs";
    expect(only(v)).toMatch(/^host.venvsDir: and host.venvPath .* overlap/);
    v.host = { adopt: ["venv"] };
    expect(only(v)).toMatch(/^host.adopt: lists 'venv', which no longer applies on a single host: .* -> remove 'venv' from host.adopt/);
  });
  test.each([
    ["venvsDir", "/opt", /is a system directory/],
    ["venvPath", "/", /is a system directory/],
    ["venvPath", "/opt", /is a system directory/],
    ["venvPath", "venv", /is not an absolute path/],
    ["venvPath", "/opt/pv/../venv", /has a `.` or `..` segment/],
    ["cacheDir", "/var/cache/", /ends with `\/`/],
    ["unitName", "-vllm.service", /starts with `-`/],
    ["unitName", "vllm@.service", /is a template without an instance/],
    ["unitName", "vllm", /must be a systemd unit name ending in .service/],
    ["unitName", "ssh.service x", /may hold only/],
    ["serviceUser", "root", /is an account of the system itself: vLLM would run with its rights/],
    ["serviceUser", "www-data", /is an account of the system itself/],
    ["serviceUser", "Vllm", /may hold only lower-case letters/],
    ["serviceUser", "1vllm", /must start with a lower-case letter/],
    ["serviceUser", "-vllm", /must start with a lower-case letter|starts with `-`/],
    ["serviceUser", "v".repeat(33), /more than the 32 allowed/],
    ["serviceUser", "vllm\nroot", /line|control|newline/i],
  ])("host.%s %p is refused", (key, value, message) => {
    const v = base();
    v.host[key] = value;
    const p = only(v);
    expect(p.startsWith(`host.${key}: `)).toBe(true);
    expect(p).toMatch(message);
    expect(p).toMatch(/ -> /);
  });
});

describe("host.serviceUser", () => {
  test("defaults to vllm; a name of one's own is accepted; `user` may be adopted", () => {
    const v = base();
    expect(parseStackConfig(v, "t").config.host.serviceUser).toBe("vllm");
    v.host = { ...v.host, serviceUser: "llm_svc-2", adopt: ["user"] };
    const c = parseStackConfig(v, "t").config;
    expect(c.host.serviceUser).toBe("llm_svc-2");
    expect(c.host.adopt).toEqual(["user"]);
  });
});

describe("a package index that needs a login", () => {
  const withCreds = (v: Record<string, unknown>) => {
    try {
      parseStackConfig(v, "test", new Set(["indexCredentials"]));
      return [];
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
  };
  test("credentials in vllm.indexUrl: refused, with the exact command that moves them into the secret", () => {
    const v = base();
    v.vllm.indexUrl = "https://ci-bot:s3cr3tpass@pypi.internal.example.org/simple";
    const p = only(v);
    expect(p).toBe(
      "vllm.indexUrl: holds credentials; a URL is kept in plain state and shows in `ps` on the host -> set it without them (https://pypi.internal.example.org/simple) and run `pulumi config set --secret indexCredentials '<user>:<password>'`",
    );
    expect(p).not.toMatch(/s3cr3tpass|ci-bot/);
  });
  test("the secret with a mirror over https: accepted", () => {
    const v = base();
    v.vllm.indexUrl = "https://pypi.internal.example.org/simple";
    expect(withCreds(v)).toEqual([]);
  });
  test("the secret with the default index (PyPI) or an http:// index: refused with the fix", () => {
    const v = base();
    expect(withCreds(v)).toEqual([
      "indexCredentials: set, but vllm.indexUrl is https://pypi.org/simple: the credentials would be sent to PyPI -> set vllm.indexUrl to your mirror, or `pulumi config rm indexCredentials`",
    ]);
    v.vllm.indexUrl = "http://pypi.internal.example.org/simple";
    v.vllm.allowInsecureIndex = true;
    expect(withCreds(v)).toEqual([
      "indexCredentials: would be sent in clear to the http:// vllm.indexUrl -> use the index's https:// URL",
    ]);
  });
  test.each([
    ["justatoken", "is not user:password"],
    [":pw", "is not user:password"],
    ["user:", "is not user:password"],
    ["user:pa ss", "holds whitespace or a control character"],
    ["user:pa\nss", "holds whitespace or a control character"],
  ])("the secret's value %p: %s, never echoed", (value, what) => {
    const p = indexCredentialsProblem(value);
    expect(p).toContain(`indexCredentials: ${what} -> `);
    expect(p).toContain("pulumi config set --secret indexCredentials '<user>:<password>'");
    const secretPart = value.includes(":") ? value.slice(value.indexOf(":") + 1) : value;
    if (secretPart) expect(p).not.toContain(secretPart);
  });
  test("a user:password value, any characters a URL cannot hold as they are included, passes", () => {
    expect(indexCredentialsProblem("__token__:ab/c@d:e%f#g")).toBeUndefined();
  });
});
