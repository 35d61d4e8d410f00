// Text for people, shared by status and history: times, ages, an attempt's table cells, plain tables.

import { formatDuration } from "../core/duration.js";
import type { Attempt } from "../core/records.js";

/** "2026-12-01 02:04:00" from an ISO time (UTC), or "-". */
export const time = (iso: string | null) => (iso === null ? "-" : iso.replace("T", " ").slice(0, 19));

/** How long ago `iso` was at `now`. */
export const ago = (now: string, iso: string) =>
  formatDuration(Math.max(0, Date.parse(now) - Date.parse(iso)));

/** An attempt's cells, as the status and history tables show them. */
export function cells(a: Attempt) {
  return {
    id: `#${a.id}`,
    release: a.releaseId ?? "(unversioned)",
    task: a.task,
    app: a.app,
    role: a.role,
    status: a.status,
    exit: a.exitCode === null ? (a.signal ?? "-") : String(a.exitCode),
    started: time(a.startedAt),
    duration: a.durationMs === null ? "-" : formatDuration(a.durationMs),
  };
}

/** A plain table: columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
