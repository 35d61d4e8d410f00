// The shape of src/: the layers import only downwards (the pure core imports no IO layer), and no
// file or function grows past what one reader can hold. Read with the TypeScript parser, not regexes.

import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

/** Every TypeScript file of src/, relative to it. */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [relative(SRC, path)] : [];
  });
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, readFileSync(join(SRC, file), "utf8"), ts.ScriptTarget.ES2022, true);
}

/** The src files a file imports (statically or with import()), relative to src/. */
function localImports(file: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    let spec: string | undefined;
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined)
      spec = (node.moduleSpecifier as ts.StringLiteral).text;
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword)
      spec = (node.arguments[0] as ts.StringLiteral | undefined)?.text;
    if (spec?.startsWith("."))
      found.push(relative(SRC, resolve(SRC, dirname(file), spec)).replace(/\.js$/, ".ts"));
    ts.forEachChild(node, visit);
  };
  visit(parse(file));
  return found;
}

const layer = (file: string): string => (file.includes("/") ? (file.split("/")[0] ?? "top") : "top");

/** What each layer may import, besides itself. The CLI and the library entry (top, cli) may import anything. */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  load: ["core"],
  db: ["core"],
  run: ["core", "load", "db"],
  operator: ["core", "load", "db"],
};

describe("src layout", () => {
  it("the layers import only downwards: core imports no IO layer; run and operator not each other", () => {
    const wrong: string[] = [];
    for (const file of sources()) {
      const from = layer(file);
      const allowed = ALLOWED[from];
      if (allowed === undefined) continue;
      for (const target of localImports(file)) {
        const to = layer(target);
        if (to !== from && !allowed.includes(to)) wrong.push(`${file} imports ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("the layer check sees imports (it would catch a core file importing the database)", () => {
    expect(localImports("db/ledger/attempts.ts")).toContain("db/ledger/sql.ts");
    expect(layer("core/decide.ts")).toBe("core");
    expect(ALLOWED.core).not.toContain("db");
  });

  it(`no file in src/ is over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES}`, () => {
    const long: string[] = [];
    for (const file of sources()) {
      const source = parse(file);
      const lines = source.getLineAndCharacterOfPosition(source.end).line + 1;
      if (lines > MAX_FILE_LINES) long.push(`${file}: ${lines} lines`);
      const visit = (node: ts.Node) => {
        if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
          const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
          const end = source.getLineAndCharacterOfPosition(node.end).line;
          if (end - start + 1 > MAX_FUNCTION_LINES)
            long.push(`${file}:${start + 1}: a function of ${end - start + 1} lines`);
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(long).toEqual([]);
  });
});
