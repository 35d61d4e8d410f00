// The one table: rows of (item, measurement, result, target, met), printed as markdown and written to
// bench/RESULTS.md with the machine, versions, date and the method notes.

import { writeFileSync } from "node:fs";

export interface Row {
  item: string;
  measurement: string;
  result: string;
  target: string;
  met: "yes" | "no" | "—";
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export function renderTable(rows: readonly Row[]): string {
  const lines = ["| # | measurement | result | target | met |", "| --- | --- | --- | --- | --- |"];
  for (const row of rows)
    lines.push(`| ${[row.item, row.measurement, row.result, row.target, row.met].map(cell).join(" | ")} |`);
  return lines.join("\n");
}

export function writeResults(
  file: string,
  parts: { header: string[]; table: string; notes: string[] },
): void {
  const text = [
    "# Benchmark results",
    "",
    "Written by `npm run bench` (bench/run.ts); do not edit by hand. Figures from one run on the machine below;",
    "timings on a shared 2-core machine move between runs, so compare figures of the same run.",
    "",
    ...parts.header.map((line) => `- ${line}`),
    "",
    parts.table,
    "",
    "## How each figure is measured",
    "",
    ...parts.notes.map((note) => `- ${note}`),
    "",
  ].join("\n");
  writeFileSync(file, text);
}
