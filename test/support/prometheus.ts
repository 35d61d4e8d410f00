// Reads a /metrics body with a real Prometheus text-format parser (@platformatic/promotel, which
// parses the exposition format into Prometheus remote-write time series). That parser skips a line it
// cannot read instead of failing, so every sample line must come back as a sample: a malformed line fails.

import { MetricType, parse } from "@platformatic/promotel";

export interface Sample {
  /** The series' metric name, suffix included (x_bucket, x_sum, x_count). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Family name -> its TYPE (lower case) and HELP. */
  families: Map<string, { type: string; help: string | undefined }>;
  samples: Sample[];
}

const TYPES: Record<number, string> = Object.fromEntries(
  Object.entries(MetricType).map(([name, value]) => [value, name.toLowerCase()]),
);

/** A sample line of the text format 0.0.4: name, optional labels (escaped values), value, optional timestamp. */
const LABEL = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"`;
const SAMPLE_LINE = new RegExp(
  String.raw`^[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:${LABEL}(?:,${LABEL})*,?)?\})? (?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)(?: -?\d+)?$`,
);

export function parseExposition(text: string): Exposition {
  const parsed = parse(text);
  const families = new Map<string, { type: string; help: string | undefined }>();
  for (const meta of parsed.metadata ?? []) {
    families.set(meta.metric_family_name ?? "", {
      type: TYPES[meta.type ?? 0] ?? "unknown",
      help: meta.help ?? undefined,
    });
  }
  const samples: Sample[] = [];
  for (const series of parsed.timeseries ?? []) {
    const labels: Record<string, string> = {};
    let family = "";
    let suffix = "";
    for (const { name, value } of series.labels ?? []) {
      if (name === "__metric_name") family = value ?? "";
      else if (name === "__suffix") suffix = `_${value ?? ""}`;
      else if (name !== null && name !== undefined) labels[name] = value ?? "";
    }
    for (const sample of series.samples ?? []) {
      samples.push({ name: `${family}${suffix}`, labels, value: sample.value ?? Number.NaN });
    }
  }
  const sampleLines = text.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"));
  // The parser's label reading is lenient too (an unclosed quote reads as no labels): check the grammar.
  const bad = sampleLines.filter((line) => !SAMPLE_LINE.test(line));
  if (bad.length > 0) throw new Error(`malformed sample lines:\n${bad.join("\n")}`);
  if (samples.length !== sampleLines.length) {
    throw new Error(
      `the parser read ${samples.length} samples from ${sampleLines.length} sample lines:\n${text}`,
    );
  }
  return { families, samples };
}

/** The value of the one sample with this name and these labels (all of them); throws when there is none. */
export function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = exposition.samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1) {
    throw new Error(`${found.length} samples of ${name}${JSON.stringify(labels)} in the exposition`);
  }
  return found[0]!.value;
}
