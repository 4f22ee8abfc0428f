// Flag parsing for every command: Node's util.parseArgs (strict), with its
// errors rewritten as `--flag: problem -> fix` plus a did-you-mean.
import { parseArgs as nodeParseArgs } from "util";
import { ConfigError, didYouMean } from "../config/errors";

export type Writer = Pick<NodeJS.WritableStream, "write">;
export type ParseOptions = Record<string, { type: "string" | "boolean"; short?: string }>;

export function parseFlags(args: string[], options: ParseOptions, usage: string): Record<string, string | boolean | undefined> {
  try {
    return nodeParseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    const msg = (e as Error).message;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const name = (/'-{1,2}([^']+)'/.exec(msg)?.[1] ?? msg).replace(/=.*$/, "");
      const guess = didYouMean(name, Object.keys(options));
      throw new ConfigError([`--${name}: unknown flag -> ${guess ? `did you mean --${guess}? ` : ""}see usage:\n${usage}`], "command line");
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const name = /'--([a-z-]+)/.exec(msg)?.[1] ?? "?";
      throw new ConfigError([options[name]?.type === "boolean" ? `--${name}: takes no value -> drop the value` : `--${name}: needs a value`], "command line");
    }
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      const a = /'([^']*)'/.exec(msg)?.[1] ?? "";
      throw new ConfigError([`${a}: unexpected argument -> flags start with --\n${usage}`], "command line");
    }
    throw e;
  }
}
