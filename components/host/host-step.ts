// One host step = one bash script (components/host/scripts/<step>.sh) run
// over SSH as a remote.Command. The script's hash is a trigger, so editing
// the script re-runs it; parameters travel as `env` arguments of the command
// (see remote-command.ts) and secrets on stdin; the delete command undoes
// what create did. The delete carries only the parameters its script reads
// on delete (`deleteParams`): the rest it takes from what create recorded on
// the host, so a changed setting is not shown twice in a preview's diff.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { readStepScript, renderRemoteCommand, renderStdin, scriptHash } from "./remote-command";

export interface HostStepArgs {
  connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
  /** Run through `sudo -n`. */
  sudo: pulumi.Input<boolean>;
  /** PV_* parameters of the script. */
  params: pulumi.Input<Record<string, string>>;
  /** Secrets for the script's stdin (NAME=value lines); kept secret in state and diffs. */
  secrets?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Extra values that force a re-run (replacement) when they change. */
  triggers?: pulumi.Input<unknown>[];
  /** The script's output may quote secrets (journal tails): keep it out of diffs and state. */
  secretOutput?: boolean;
  /** The PV_* parameters the script reads on delete; default: all of them. */
  deleteParams?: string[];
}

export class HostStep extends pulumi.ComponentResource {
  readonly command: command.remote.Command;
  /** Last line of the step's stdout: `changed` or `unchanged`. */
  readonly result: pulumi.Output<string>;

  constructor(readonly step: string, name: string, args: HostStepArgs, opts?: pulumi.ComponentResourceOptions, type = "pulumi-vllm:host:Step") {
    super(type, name, {}, opts);
    const script = readStepScript(step);
    const render = (action: "create" | "delete") =>
      pulumi.all([args.params, args.sudo]).apply(([env, sudo]) =>
        renderRemoteCommand({ step, script, action, env: action === "delete" ? onDelete(env, args.deleteParams) : env, sudo }),
      );
    const stdin = args.secrets ? pulumi.secret(pulumi.output(args.secrets).apply((s) => renderStdin(s as Record<string, string>))) : undefined;
    this.command = new command.remote.Command(
      // Named after the step component (which carries the server's name), so two servers in one
      // program get distinct URNs; the alias is the name releases up to 0.1.0 used.
      name,
      {
        connection: args.connection,
        create: render("create"),
        delete: render("delete"),
        stdin,
        triggers: [scriptHash(script), ...(args.triggers ?? [])],
        // PULUMI_COMMAND_STDOUT would be sent with SSH setenv, which sshd refuses without AcceptEnv.
        addPreviousOutputInEnv: false,
      },
      {
        parent: this,
        aliases: [{ name: step }],
        // A component's dependsOn does not hold back its children: the command itself must wait.
        dependsOn: opts?.dependsOn,
        // The old step's delete must run before the new create, or it would undo the new state.
        deleteBeforeReplace: true,
        additionalSecretOutputs: args.secretOutput ? ["stdout", "stderr"] : [],
      },
    );
    this.result = this.command.stdout.apply((out) => out.trim().split("\n").pop() ?? "");
    this.registerOutputs({ result: this.result });
  }
}

/** The parameters a delete needs: those named, when the step names them. */
export function onDelete(env: Record<string, string>, names: string[] | undefined): Record<string, string> {
  if (!names) return env;
  return Object.fromEntries(Object.entries(env).filter(([k]) => names.includes(k)));
}

/** `key=value` lines of a step's stdout (what a step reports besides `changed`: a commit, a job id). */
export function stdoutFacts(stdout: string): Record<string, string> {
  const facts: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const m = /^([a-z_]+)=(.*)$/.exec(line.trim());
    if (m) facts[m[1]] = m[2];
  }
  return facts;
}
