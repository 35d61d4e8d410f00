// The docs as the tests read them: the pages, the recipe table, and Markdown's links and headings
// (anchors computed the way GitHub makes them), so that tests execute what the docs say.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./cli.js";

/** A docs file's text, by its path from the repository root. */
export function readDoc(path: string): string {
  return readFileSync(join(ROOT, path), "utf8");
}

function readmesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? readmesUnder(join(dir, entry.name))
      : entry.name === "README.md"
        ? [join(dir, entry.name)]
        : [],
  );
}

/** The docs pages: README.md, CHANGELOG.md, docs/*.md. */
export function docPages(): string[] {
  const pages = readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`);
  return ["README.md", "CHANGELOG.md", ...pages];
}

/** Every Markdown file whose links must hold: the pages and the examples' READMEs. */
export function linkedMarkdown(): string[] {
  return [...docPages(), ...readmesUnder("examples")];
}

/** The lines of a Markdown text that are not inside a fenced code block, with their line numbers. */
export function proseLines(text: string): { line: string; number: number }[] {
  const out: { line: string; number: number }[] = [];
  let fence: string | undefined;
  text.split("\n").forEach((line, index) => {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (marker !== undefined) {
      if (fence === undefined) fence = marker[0];
      else if (marker[0] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ line, number: index + 1 });
  });
  return out;
}

/** The anchor GitHub gives a heading: its text, lowercased, without punctuation, spaces as hyphens. */
export function githubAnchor(heading: string): string {
  const text = heading
    // inline code keeps its text; links keep their text; HTML tags and emphasis markers go
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .replace(/`([^`]*)`/g, "$1")
    .replace(/\*+/g, "")
    .replace(/(^|\s)_+|_+(\s|$)/g, "$1$2");
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a Markdown text's headings; a repeated heading gets -1, -2, ... as on GitHub. */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { line } of proseLines(text)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = githubAnchor(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** The link targets of a Markdown text (`[text](target)`, `![alt](target)`), outside code. */
export function linksOf(text: string): { target: string; line: number }[] {
  const links: { target: string; line: number }[] = [];
  for (const { line, number } of proseLines(text)) {
    const prose = line.replace(/`[^`]*`/g, "``");
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      if (match[1] !== undefined) links.push({ target: match[1], line: number });
    }
  }
  return links;
}

/** The recipe table of docs/recipes.md: framework name -> its release command. */
export function recipes(): Map<string, string> {
  const table = new Map<string, string>();
  for (const line of readDoc("docs/recipes.md").split("\n")) {
    const match = /^\| ([^|]+?) \| `((?:npx )?release-orchestrator run .+?)` \|/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) table.set(match[1], match[2]);
  }
  return table;
}
