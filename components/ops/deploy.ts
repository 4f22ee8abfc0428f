// deployVllmStack: what the CI recipe does, as one call of Pulumi's
// Automation API: plan (the planner's verdict, before any engine or host),
// preview, up, smoke. The workspace runs with the `pulumi` on PATH and the
// environment the caller gives (backend, passphrase, access token): nothing
// of this repository's own engine build or settings.
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { planFromFlags } from "../cli/plan";
import { planJson } from "../cli/render";
import { readStack } from "./state";
import { smokeServer, SmokeResult } from "./smoke";

export interface DeployVllmStackOptions {
  /** The Pulumi project directory (Pulumi.yaml; the stack program or your own). */
  workDir: string;
  stackName: string;
  /** Environment of every pulumi run: PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE, PULUMI_ACCESS_TOKEN... Defaults to this process's. */
  envVars?: Record<string, string>;
  /** Stop after the preview (a pull request). Default false. */
  previewOnly?: boolean;
  /** Run the smoke checks after up. Default true. */
  smoke?: boolean;
  /** Create the stack when it does not exist (one stack per environment, made on first deploy). Default true. */
  createStack?: boolean;
  /** Engine output, line by line as Pulumi prints it. */
  onOutput?: (text: string) => void;
}

export interface DeployVllmStackResult {
  /** `pulumi-vllm plan --json` of the stack file, when the project is driven by one (Pulumi.<stack>.yaml with pulumi-vllm:topology). */
  plan?: ReturnType<typeof planJson>;
  /** The preview's change summary (op -> count). */
  preview: Record<string, number>;
  /** The up's change summary, unless previewOnly. */
  up?: Record<string, number>;
  smoke?: SmokeResult[];
}

export class DeployError extends Error {}

/** The plan of a stack driven by a pulumi-vllm stack file; undefined for a program of its own. */
async function planOfStackFile(workDir: string, stack: string) {
  const file = path.join(workDir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) return undefined;
  const doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  if (!doc.config || !("pulumi-vllm:topology" in doc.config)) return undefined;
  const { plan } = await planFromFlags({ stack, dir: workDir }, workDir);
  return planJson(plan, stack);
}

/** plan -> preview -> up -> smoke for one stack; throws DeployError when the plan does not fit or a smoke check fails. */
export async function deployVllmStack(o: DeployVllmStackOptions): Promise<DeployVllmStackResult> {
  const plan = await planOfStackFile(o.workDir, o.stackName);
  if (plan && !plan.fits) throw new DeployError(`stack ${o.stackName} does not fit:\n${plan.problems.map((p) => `  - ${p}`).join("\n")}`);
  // Loaded here, not at import: importing the library stays free of the Automation API.
  const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
  const ws = { workDir: o.workDir, envVars: o.envVars };
  const args = { stackName: o.stackName, workDir: o.workDir };
  const stack = o.createStack === false ? await LocalWorkspace.selectStack(args, ws) : await LocalWorkspace.createOrSelectStack(args as { stackName: string; workDir: string; program?: PulumiFn }, ws);
  const onOutput = o.onOutput;
  const preview = await stack.preview({ onOutput, diff: true });
  const result: DeployVllmStackResult = { plan, preview: preview.changeSummary as Record<string, number> };
  if (o.previewOnly) return result;
  const up = await stack.up({ onOutput });
  result.up = up.summary.resourceChanges as Record<string, number>;
  if (o.smoke === false) return result;
  const env = { ...process.env, ...(o.envVars ?? {}) };
  result.smoke = [];
  for (const s of readStack({ stack: o.stackName, cwd: o.workDir, env })) {
    try {
      result.smoke.push(await smokeServer(s));
    } catch (e) {
      throw new DeployError(`smoke of server ${s.name} in stack ${o.stackName} failed: ${(e as Error).message}`);
    }
  }
  return result;
}
