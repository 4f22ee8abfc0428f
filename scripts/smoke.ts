// `npm run smoke -- --stack <name> [--endpoint URL]`: what seed 002's make
// targets did by hand, against a stack's server: list the models, one chat
// completion, one tool call. Reads the endpoint, served model and API key
// from the stack's outputs (the key never goes to argv or the screen).
// A server bound to 127.0.0.1 on a remote host is reached through an
// `ssh -L` tunnel this script opens with the stack's connection settings.
import { spawn, spawnSync, ChildProcess } from "child_process";
import * as net from "net";
import * as path from "path";
import { loadStackFile, resolveLocalPath } from "../components/config/load";

const REPO = path.resolve(__dirname, "..");

function args(): { stack: string; endpoint?: string } {
  const a = process.argv.slice(2);
  const get = (f: string) => {
    const i = a.indexOf(f);
    return i >= 0 ? a[i + 1] : undefined;
  };
  const stack = get("--stack");
  if (!stack) {
    console.error("usage: npm run smoke -- --stack <name> [--endpoint http://host:port/v1]");
    process.exit(1);
  }
  return { stack, endpoint: get("--endpoint") };
}

function stackOutputs(stack: string): Record<string, string> {
  // The built-in dev stack has a passphrase of its own (scripts/pulumi-env.sh); any other stack uses the user's.
  const devPassphrase = `if [ "$1" = dev ] && [ -z "\${PULUMI_CONFIG_PASSPHRASE+x}" ] && [ -z "\${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then export PULUMI_CONFIG_PASSPHRASE=$PULUMI_VLLM_DEV_PASSPHRASE; fi`;
  const r = spawnSync("bash", ["-c", `source scripts/pulumi-env.sh >/dev/null && ${devPassphrase} && pulumi stack output --json --show-secrets --stack "$1"`, "smoke", stack], {
    cwd: REPO,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`pulumi stack output failed for stack ${stack}: ${r.stderr.trim()} -> run pulumi up --stack ${stack} first`);
  return JSON.parse(r.stdout);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function tunnel(stack: string, remotePort: number): Promise<{ local: number; proc: ChildProcess }> {
  const c = loadStackFile(path.join(REPO, `Pulumi.${stack}.yaml`)).config.connection;
  if (!c.privateKeyPath) throw new Error("the stack's SSH key is secret config -> open the tunnel from `pulumi stack output tunnel` yourself and pass --endpoint http://127.0.0.1:<port>/v1");
  const local = await freePort();
  const opts = ["-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-i", resolveLocalPath(c.privateKeyPath, REPO), "-p", String(c.port), "-L", `${local}:127.0.0.1:${remotePort}`];
  if (c.insecureSkipHostKeyCheck) opts.push("-o", "StrictHostKeyChecking=no");
  else if (c.hostKeyPath) opts.push("-o", `UserKnownHostsFile=${resolveLocalPath(c.hostKeyPath, REPO)}`, "-o", "StrictHostKeyChecking=yes");
  const proc = spawn("ssh", [...opts, `${c.user}@${c.host}`], { stdio: "ignore" });
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise<boolean>((resolve) => net.connect(local, "127.0.0.1").on("connect", function (this: net.Socket) { this.end(); resolve(true); }).on("error", () => resolve(false)));
    if (ok) return { local, proc };
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill();
  throw new Error(`ssh -L to ${c.host} did not come up`);
}

async function call(url: string, key: string | undefined, body?: unknown): Promise<any> {
  const res = await fetch(url, {
    method: body ? "POST" : "GET",
    headers: { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

async function main() {
  const { stack, endpoint: given } = args();
  const out = stackOutputs(stack);
  const key: string | undefined = out.apiKey;
  const model: string = out.servedModelName;
  let endpoint = given ?? out.endpoint;
  let t: { local: number; proc: ChildProcess } | undefined;
  const u = new URL(endpoint);
  const c = loadStackFile(path.join(REPO, `Pulumi.${stack}.yaml`)).config.connection;
  if (!given && u.hostname === "127.0.0.1" && !["127.0.0.1", "localhost"].includes(c.host)) {
    t = await tunnel(stack, Number(u.port));
    endpoint = `http://127.0.0.1:${t.local}/v1`;
  }
  try {
    const models = await call(`${endpoint}/models`, key);
    const ids: string[] = models.data.map((m: { id: string }) => m.id);
    if (!ids.includes(model)) throw new Error(`/v1/models lists ${ids.join(", ")}, not ${model}`);
    console.log(`ok  models: ${ids.join(", ")}${models.data[0]?.owned_by === "pulumi-vllm-standin" ? "  (the vLLM stand-in)" : ""}`);
    const chat = await call(`${endpoint}/chat/completions`, key, { model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 16 });
    console.log(`ok  chat: ${JSON.stringify(chat.choices[0].message.content)}`);
    const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
    const tool = await call(`${endpoint}/chat/completions`, key, { model, messages: [{ role: "user", content: "Weather in Dresden?" }], tools, tool_choice: "auto" });
    const calls = tool.choices[0].message.tool_calls ?? [];
    if (!calls.length) throw new Error("the tool-call request returned no tool_calls (is serving.enableAutoToolChoice on with the right toolCallParser?)");
    console.log(`ok  tool call: ${calls[0].function.name}(${calls[0].function.arguments})`);
  } finally {
    t?.proc.kill();
  }
}

main().catch((e) => {
  console.error(`smoke: ${e.message}`);
  process.exit(1);
});
