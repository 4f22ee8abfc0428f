// README's API reference is generated from the argument interfaces, and each
// "Defaults to X" in their JSDoc is the zod schema's default: a default
// changed in one place and not the other fails here.
import * as fs from "fs";
import * as path from "path";
import * as schema from "../../components/config/schema";
import { argDocs, renderApiReference } from "../../scripts/api-reference";

const README = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");

test("README holds the API reference as scripts/api-reference.ts renders it", () => {
  const m = /<!-- api-reference:begin -->\n([\s\S]*?)<!-- api-reference:end -->/.exec(README);
  expect(m).not.toBeNull();
  expect(m![1]).toBe(renderApiReference());
});

const PAIRS: [string, any][] = [
  ["SshConnection", schema.Connection],
  ["JumpHostArgs", schema.JumpHost],
  ["HardwareArgs", schema.Hardware],
  ["ModelArgs", schema.Model],
  ["ServingArgs", schema.Serving],
  ["VllmArgs", schema.Vllm],
  ["HostArgs", schema.Host],
  ["EarlyOomArgs", schema.EarlyOom],
  ["NcclArgs", schema.Nccl],
  ["SlurmArgs", schema.Slurm],
];

function shown(v: unknown): string | undefined {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v) && v.length === 0) return "[]";
  if (v && typeof v === "object" && Object.keys(v).length === 0) return "{}";
  return undefined; // an object default: described in words
}

test.each(PAIRS)("%s: every schema key is an argument, documented, with the schema's default", (iface, zodSchema) => {
  const docs = argDocs().find((d) => d.name === iface)!;
  const shape = zodSchema.shape as Record<string, any>;
  for (const [key, field] of Object.entries(shape)) {
    const prop = docs.props.find((p) => p.name === key);
    expect({ key, documented: !!prop?.doc }).toEqual({ key, documented: true });
    if (field._zod.def.type === "default") {
      const want = shown(field.parse(undefined));
      if (want !== undefined) expect({ key, doc: prop!.doc }).toEqual({ key, doc: expect.stringContaining(`Defaults to ${want}`) });
    } else if (field._zod.def.type !== "optional") {
      expect({ key, doc: prop!.doc }).toEqual({ key, doc: expect.stringMatching(/Required\./) });
    }
  }
});
