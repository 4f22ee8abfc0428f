// Entry of the `pulumi-vllm` command: --help, --version and the dispatch to
// the commands. Each command's code is loaded only when it runs: `plan`
// needs the planner and the Pulumi SDK, status/logs/smoke do not, and a
// day-two command should start fast.
import * as path from "path";
import { terminalSafe } from "../config/strings";
import type { Writer } from "./flags";
import { COMMAND_USAGE } from "./usage";

type Run = (rest: string[], out: Writer, err: Writer, cwd: string) => Promise<number>;

const COMMANDS: Record<string, { summary: string; usage: () => string; run: () => Run }> = {
  plan: { summary: "the plan of a stack or of ad-hoc flags, before anything runs", usage: () => require("./plan").PLAN_USAGE, run: () => require("./plan").runPlan },
  status: { summary: "each host step checked against what the stack made; drift and its repair", usage: () => COMMAND_USAGE.status, run: () => require("./ops-commands").runStatus },
  logs: { summary: "the server's journal (SLURM: the job's log), secrets redacted", usage: () => COMMAND_USAGE.logs, run: () => require("./ops-commands").runLogs },
  smoke: { summary: "list the models, one chat completion, one tool call, through a tunnel if needed", usage: () => COMMAND_USAGE.smoke, run: () => require("./ops-commands").runSmoke },
};

export const USAGE = `usage: pulumi-vllm <command> [flags]    (pulumi-vllm <command> --help for its flags)

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)}${c.summary}`)
  .join("\n")}

  -h, --help      this text
  -V, --version   the version of pulumi-vllm

status, logs and smoke read the stack with the \`pulumi\` on your PATH (your backend, your login, your
secrets passphrase or provider), in the project directory (--dir), and reach the host with the stack's
own connection (pinned host key, jump host, sudo).`;

/** This package's version (package.json next to the source or the compiled dist/). */
export function version(): string {
  for (const rel of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = require(path.join(__dirname, rel));
      if (pkg.name === "pulumi-vllm") return pkg.version;
    } catch {
      /* the other layout */
    }
  }
  return "unknown";
}

export async function main(argv: string[], out: Writer = process.stdout, err: Writer = process.stderr, cwd = process.cwd()): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "--help" || cmd === "-h" || cmd === "help") {
    const sub = cmd === "help" ? rest[0] : undefined;
    out.write((sub && COMMANDS[sub] ? COMMANDS[sub].usage() : USAGE) + "\n");
    return 0;
  }
  if (cmd === "--version" || cmd === "-V") {
    out.write(`pulumi-vllm ${version()}\n`);
    return 0;
  }
  const c = cmd === undefined ? undefined : COMMANDS[cmd];
  if (!c) {
    err.write(`${cmd ? `unknown command ${terminalSafe(cmd)}\n` : ""}${USAGE}\n`);
    return 1;
  }
  return c.run()(rest, out, err, cwd);
}
