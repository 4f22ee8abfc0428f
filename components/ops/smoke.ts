// `pulumi-vllm smoke`: what seed 002 did by hand against a running server:
// list the models, one chat completion, one tool call (when the server has a
// tool parser). A server bound to loopback (the default) or a SLURM head node
// inside the cluster is reached through an `ssh -L` tunnel over the stack's
// own connection. The API key is sent as a header, never printed.
import { OpsError, ServerRecord, connectionOfServer } from "./state";
import { withSsh } from "./ssh";

export interface SmokeResult {
  server: string;
  ok: boolean;
  lines: string[];
}

async function call(url: string, key: string | undefined, body?: unknown): Promise<any> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: body ? "POST" : "GET",
      headers: { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(120_000),
    });
  } catch (e) {
    throw new OpsError(`${url}: ${(e as Error).message} -> is the server up? (pulumi-vllm status)`);
  }
  const text = await res.text();
  if (!res.ok) throw new OpsError(`${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const isLoopback = (h: string) => h === "localhost" || h === "::1" || h === "[::1]" || /^127\./.test(h);

/** Whether the server's command line turns on tool calls (a parser and auto tool choice). */
export function hasToolParser(s: ServerRecord): boolean {
  const cmd = String((s.outputs.plan as { command?: string } | undefined)?.command ?? "");
  return cmd.includes("--tool-call-parser") && cmd.includes("--enable-auto-tool-choice");
}

/** The checks against a base URL (`http://host:port/v1`). */
export async function smokeEndpoint(endpoint: string, key: string | undefined, model: string, tools: boolean): Promise<string[]> {
  const lines: string[] = [];
  const models = await call(`${endpoint}/models`, key);
  const ids: string[] = (models.data ?? []).map((m: { id: string }) => m.id);
  if (!ids.includes(model)) throw new OpsError(`/v1/models lists ${ids.join(", ") || "nothing"}, not ${model}`);
  lines.push(`ok  models: ${ids.join(", ")}${models.data[0]?.owned_by === "pulumi-vllm-standin" ? "  (the vLLM stand-in)" : ""}`);
  const chat = await call(`${endpoint}/chat/completions`, key, { model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 16 });
  const content = chat.choices?.[0]?.message?.content;
  if (typeof content !== "string") throw new OpsError(`the chat completion returned no message: ${JSON.stringify(chat).slice(0, 300)}`);
  lines.push(`ok  chat: ${JSON.stringify(content)}`);
  if (!tools) {
    lines.push("--  tool call: skipped (no serving.toolCallParser with enableAutoToolChoice)");
    return lines;
  }
  const fn = { type: "function", function: { name: "get_weather", description: "Weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };
  const tool = await call(`${endpoint}/chat/completions`, key, { model, messages: [{ role: "user", content: "Weather in Dresden?" }], tools: [fn], tool_choice: "auto" });
  const calls = tool.choices?.[0]?.message?.tool_calls ?? [];
  if (!calls.length) throw new OpsError("the tool-call request returned no tool_calls -> check serving.toolCallParser fits the model");
  lines.push(`ok  tool call: ${calls[0].function.name}(${calls[0].function.arguments})`);
  return lines;
}

/** Smoke one server of the stack, through a tunnel where the API is not reachable from here. */
export async function smokeServer(s: ServerRecord, opts: { endpoint?: string; tunnel?: boolean } = {}): Promise<SmokeResult> {
  const key = typeof s.outputs.apiKey === "string" ? s.outputs.apiKey : undefined;
  const model = String(s.outputs.servedModelName ?? "");
  const endpoint = opts.endpoint ?? String(s.outputs.endpoint ?? "");
  if (!endpoint || !model) throw new OpsError(`server ${s.name} has no endpoint or served model in the state -> run pulumi up first`);
  const tools = hasToolParser(s);
  const u = new URL(endpoint);
  const needsTunnel = opts.endpoint === undefined && opts.tunnel !== false && (s.topology === "slurm" || isLoopback(u.hostname));
  if (!needsTunnel) return { server: s.name, ok: true, lines: await smokeEndpoint(endpoint.replace(/\/$/, ""), key, model, tools) };
  const { connection } = connectionOfServer(s);
  return withSsh(connection, async (ssh) => {
    const t = await ssh.tunnel(u.hostname.replace(/^\[|\]$/g, ""), Number(u.port || 80));
    try {
      const lines = await smokeEndpoint(`http://127.0.0.1:${t.localPort}${u.pathname.replace(/\/$/, "")}`, key, model, tools);
      return { server: s.name, ok: true, lines: [`--  through ssh -L ${t.localPort}:${u.host} via ${connection.user}@${connection.host}`, ...lines] };
    } finally {
      t.close();
    }
  });
}
