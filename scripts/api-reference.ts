// Prints README's "API reference" from the argument interfaces
// (components/api/args.ts): every argument, its type and its JSDoc, which
// ends with its default. `npm run api-reference` prints it; a unit test checks
// that README holds exactly this text, and that each "Defaults to" matches
// the zod schema's default.
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

export const ARGS_FILE = path.join(__dirname, "..", "components", "api", "args.ts");

export interface ArgDoc {
  name: string;
  type: string;
  optional: boolean;
  doc: string;
}

/** Each exported interface of args.ts, in file order, with its JSDoc and its properties'. */
export function argDocs(file = ARGS_FILE): { name: string; doc: string; extends?: string; props: ArgDoc[] }[] {
  const src = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const jsdoc = (n: ts.Node) =>
    ts
      .getJSDocCommentsAndTags(n)
      .map((d) => (typeof d.comment === "string" ? d.comment : ""))
      .join(" ")
      .replace(/\s+/g, " ")
      .trim();
  const out: { name: string; doc: string; extends?: string; props: ArgDoc[] }[] = [];
  src.forEachChild((n) => {
    if (!ts.isInterfaceDeclaration(n) || !n.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) return;
    const props = n.members.filter(ts.isPropertySignature).map((p) => ({
      name: p.name.getText(src),
      type: p.type ? p.type.getText(src).replace(/\s+/g, " ") : "unknown",
      optional: !!p.questionToken,
      doc: jsdoc(p),
    }));
    out.push({ name: n.name.text, doc: jsdoc(n), extends: n.heritageClauses?.[0]?.types[0]?.getText(src), props });
  });
  return out;
}

export function renderApiReference(): string {
  const lines: string[] = [];
  // The two servers' args first, then the sections they are made of.
  const docs = argDocs();
  const first = ["VllmServerArgs", "VllmSlurmServerArgs"];
  const ordered = [...first.map((n) => docs.find((d) => d.name === n)!), ...docs.filter((d) => !first.includes(d.name))];
  for (const i of ordered) {
    lines.push(`#### \`${i.name}\`${i.extends ? ` (all of \`${i.extends}\`, plus)` : ""}`, "", i.doc, "", "| arg | type | what |", "|---|---|---|");
    for (const p of i.props) lines.push(`| \`${p.name}${p.optional ? "?" : ""}\` | \`${p.type.replace(/\|/g, "\\|")}\` | ${p.doc.replace(/\|/g, "\\|")} |`);
    lines.push("");
  }
  return lines.join("\n").trimEnd() + "\n";
}

if (require.main === module) process.stdout.write(renderApiReference());
