// The CI recipe's deploy step: plan -> preview -> up -> smoke in one call of
// pulumi-vllm's Automation API entry, for one stack (one environment).
//
//   npx ts-node --transpile-only deploy.ts --stack production [--preview-only]
//
// Runs in the Pulumi project directory with the `pulumi` on PATH; the backend,
// passphrase or access token come from the environment the workflow sets.
// Exit codes: 0 deployed and smoke-tested (or previewed), 2 the plan does not
// fit, 1 anything else failed.
import { DeployError, deployVllmStack } from "pulumi-vllm";

async function run(argv: string[]): Promise<number> {
  const i = argv.indexOf("--stack");
  const stackName = i >= 0 ? argv[i + 1] : undefined;
  if (!stackName) {
    console.error("usage: deploy.ts --stack <name> [--preview-only]");
    return 1;
  }
  try {
    const r = await deployVllmStack({
      workDir: process.cwd(),
      stackName,
      previewOnly: argv.includes("--preview-only"),
      onOutput: (text) => process.stdout.write(text),
    });
    if (r.plan) console.log(`plan: fits, KV cache ${r.plan.kvCacheGiB} GiB per GPU, max model len ${r.plan.maxModelLen}`);
    for (const s of r.smoke ?? []) console.log(`smoke ${s.server}:\n  ${s.lines.join("\n  ")}`);
    return 0;
  } catch (e) {
    console.error((e as Error).message);
    return e instanceof DeployError && /does not fit/.test((e as Error).message) ? 2 : 1;
  }
}

run(process.argv.slice(2)).then((code) => process.exit(code));
