// `pulumi-vllm status | logs | smoke`: day two against a user's own stack.
// They read the stack with the `pulumi` on PATH (the user's backend and
// login; this code sets no PULUMI_* variable) and reach the hosts with the
// stack's own connection.
import { spawn } from "child_process";
import * as path from "path";
import { ConfigError } from "../config/errors";
import { jsonTerminalSafe, terminalSafe } from "../config/strings";
import { redactor, logsCommand, sinceProblem } from "../ops/logs";
import { stackStatus } from "../ops/run";
import { smokeServer } from "../ops/smoke";
import { withSsh } from "../ops/ssh";
import { connectionOfServer, OpsError, PulumiTarget, readStack, secretValues } from "../ops/state";
import { exitCodeOf, renderStatus, repairArgv } from "../ops/status";
import { parseFlags, ParseOptions, Writer } from "./flags";
import { COMMAND_USAGE } from "./usage";

const COMMON_OPTIONS: ParseOptions = { stack: { type: "string" }, dir: { type: "string" }, server: { type: "string" }, help: { type: "boolean", short: "h" } };

function targetOf(flags: Record<string, unknown>, cwd: string, usage: string): PulumiTarget {
  if (typeof flags.stack !== "string" || !flags.stack) throw new ConfigError([`--stack: is required -> pass --stack <name>\n${usage}`], "command line");
  return { stack: flags.stack, cwd: path.resolve(cwd, typeof flags.dir === "string" ? flags.dir : ".") };
}

/** Runs a command body, turning the errors a user can fix into `message` + exit 1. */
async function guarded(err: Writer, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConfigError || e instanceof OpsError) {
      err.write(terminalSafe(e.message) + "\n");
      return 1;
    }
    throw e;
  }
}

/** Runs `argv` (the user's pulumi), its output passed through. */
function runPassthrough(argv: string[], out: Writer, err: Writer, cwd: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, stdio: ["inherit", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => out.write(d));
    child.stderr!.on("data", (d) => err.write(d));
    child.on("error", (e) => {
      err.write(`cannot run ${argv[0]}: ${e.message}\n`);
      resolve(1);
    });
    child.on("close", (code) => resolve(code ?? 1));
  });
}

async function confirm(question: string, out: Writer): Promise<boolean> {
  out.write(question);
  const answer = await new Promise<string>((resolve) => process.stdin.once("data", (d) => resolve(String(d))));
  process.stdin.pause();
  return /^y(es)?$/i.test(answer.trim());
}

export async function runStatus(rest: string[], out: Writer, err: Writer, cwd: string): Promise<number> {
  return guarded(err, async () => {
    const usage = COMMAND_USAGE.status;
    const flags = parseFlags(rest, { ...COMMON_OPTIONS, json: { type: "boolean" }, repair: { type: "boolean" }, yes: { type: "boolean", short: "y" } }, usage);
    if (flags.help) {
      out.write(usage + "\n");
      return 0;
    }
    if (flags.yes && !flags.repair) throw new ConfigError(["--yes: only means something with --repair -> add --repair"], "command line");
    const t = targetOf(flags, cwd, usage);
    const { statuses, warnings } = await stackStatus(t, flags.server as string | undefined);
    for (const w of warnings) err.write(`warning: ${terminalSafe(w)}\n`);
    const code = exitCodeOf(statuses);
    const dirArg = typeof flags.dir === "string" ? t.cwd : undefined;
    const repair = repairArgv(t.stack, statuses, dirArg);
    if (flags.json) {
      out.write(jsonTerminalSafe(JSON.stringify({ stack: t.stack, exitCode: code, servers: statuses, repair: repair ?? null }, null, 2)) + "\n");
    } else {
      out.write(terminalSafe(renderStatus(statuses)));
      if (code === 0) out.write("all steps ok\n");
    }
    if (code !== 3 || !repair) return code;
    const line = repair.map((a) => (/^[A-Za-z0-9_.,:/=@+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
    if (!flags.json) out.write(`drift found. To re-converge, run:\n  ${line}\nor: pulumi-vllm status --stack ${t.stack}${dirArg ? ` --dir ${dirArg}` : ""} --repair\n`);
    if (!flags.repair) return code;
    if (!flags.yes) {
      if (!process.stdin.isTTY) throw new ConfigError(["--repair: no terminal to ask on -> add --yes to run the repair without asking"], "command line");
      if (!(await confirm(`Run it now? [y/N] `, out))) return code;
    }
    err.write(`repairing: ${line}${flags.yes ? " --yes" : ""}\n`);
    const rc = await runPassthrough([...repair, ...(flags.yes ? ["--yes"] : [])], out, err, t.cwd!);
    if (rc !== 0) {
      err.write(`the repair failed (pulumi up exited ${rc}): its output above says why\n`);
      return 1;
    }
    const after = await stackStatus(t, flags.server as string | undefined);
    const afterCode = exitCodeOf(after.statuses);
    out.write("after the repair:\n" + terminalSafe(renderStatus(after.statuses)) + (afterCode === 0 ? "all steps ok\n" : ""));
    return afterCode;
  });
}

export async function runLogs(rest: string[], out: Writer, err: Writer, cwd: string): Promise<number> {
  return guarded(err, async () => {
    const usage = COMMAND_USAGE.logs;
    const flags = parseFlags(rest, { ...COMMON_OPTIONS, follow: { type: "boolean", short: "f" }, since: { type: "string" }, lines: { type: "string", short: "n" } }, usage);
    if (flags.help) {
      out.write(usage + "\n");
      return 0;
    }
    const lines = flags.lines === undefined ? undefined : Number(flags.lines);
    if (lines !== undefined && !(Number.isInteger(lines) && lines > 0)) throw new ConfigError([`--lines: ${JSON.stringify(flags.lines)} is not a whole number above 0 -> e.g. -n 200`], "command line");
    if (typeof flags.since === "string" && sinceProblem(flags.since)) throw new ConfigError([sinceProblem(flags.since)!], "command line");
    const t = targetOf(flags, cwd, usage);
    const servers = readStack(t, flags.server as string | undefined);
    if (servers.length > 1) throw new ConfigError([`--server: stack ${t.stack} has ${servers.length} servers -> pass --server ${servers.map((s) => s.name).join(" or --server ")}`], "command line");
    const s = servers[0];
    const cmd = logsCommand(s, { follow: !!flags.follow, since: flags.since as string | undefined, lines });
    const redact = redactor(secretValues(s));
    return withSsh(connectionOfServer(s).connection, (ssh) => {
      return new Promise<number>((resolve) => {
        const child = ssh.stream(cmd);
        let buf = "";
        child.stdout!.setEncoding("utf8").on("data", (d: string) => {
          buf += d;
          const parts = buf.split("\n");
          buf = parts.pop()!;
          for (const l of parts) out.write(terminalSafe(redact(l)) + "\n");
        });
        let errText = "";
        child.stderr!.setEncoding("utf8").on("data", (d: string) => (errText += d));
        const stop = () => child.kill("SIGTERM");
        process.once("SIGINT", stop);
        child.on("close", (code) => {
          process.removeListener("SIGINT", stop);
          if (buf) out.write(terminalSafe(redact(buf)) + "\n");
          if (code !== 0 && !flags.follow) {
            err.write(`logs: the host said: ${terminalSafe(redact(errText.trim())) || `exit ${code}`}\n`);
            resolve(1);
          } else resolve(0);
        });
      });
    });
  });
}

export async function runSmoke(rest: string[], out: Writer, err: Writer, cwd: string): Promise<number> {
  return guarded(err, async () => {
    const usage = COMMAND_USAGE.smoke;
    const flags = parseFlags(rest, { ...COMMON_OPTIONS, endpoint: { type: "string" }, "no-tunnel": { type: "boolean" }, json: { type: "boolean" } }, usage);
    if (flags.help) {
      out.write(usage + "\n");
      return 0;
    }
    const t = targetOf(flags, cwd, usage);
    const results = [];
    let failed = false;
    for (const s of readStack(t, flags.server as string | undefined)) {
      try {
        results.push(await smokeServer(s, { endpoint: flags.endpoint as string | undefined, tunnel: !flags["no-tunnel"] }));
      } catch (e) {
        if (!(e instanceof OpsError)) throw e;
        failed = true;
        results.push({ server: s.name, ok: false, lines: [`FAIL ${e.message}`] });
      }
    }
    if (flags.json) out.write(jsonTerminalSafe(JSON.stringify({ stack: t.stack, ok: !failed, servers: results }, null, 2)) + "\n");
    else for (const r of results) out.write(terminalSafe(`server ${r.server}:\n${r.lines.map((l) => `  ${l}`).join("\n")}\n`));
    return failed ? 1 : 0;
  });
}
