// The stable exit codes: one table (code, name, meaning, retry) that the code, `run --help` and the
// docs' exit-code tables (README.md, docs/reference.md) all come from.

/** Whether an orchestrator that restarts failed runs (a Kubernetes Job, a platform's retry) should retry. */
export type Retry = "yes" | "no" | "depends";

export interface ExitCodeEntry {
  /** The code, or "N": the leader's command's own exit code, passed through. */
  readonly code: number | "N";
  /** The name the code uses (`ExitCode.<name>`). */
  readonly name: string;
  readonly meaning: string;
  readonly retry: Retry;
  /** Why, in a few words: what a retry would find. */
  readonly retryWhy: string;
}

export const EXIT_CODES = [
  {
    code: 0,
    name: "ok",
    meaning:
      "ran and succeeded; or already done for this release; or waited and the leader succeeded; or skipped",
    retry: "no",
    retryWhy: "done",
  },
  {
    code: "N",
    name: "command",
    meaning:
      "the leader's command exited N; passed through unchanged (128 + n when it was killed by signal n)",
    retry: "depends",
    retryWhy:
      "a retry runs the command again: worth it when its failure can pass, not for a broken migration",
  },
  {
    code: 64,
    name: "usage",
    meaning: "usage or configuration error; nothing was run",
    retry: "no",
    retryWhy: "fix the configuration first",
  },
  {
    code: 69,
    name: "databaseUnavailable",
    meaning: "database unavailable (connect or authentication failed after retries)",
    retry: "yes",
    retryWhy: "the database may come back (a wrong password or a missing database will not)",
  },
  {
    code: 70,
    name: "internal",
    meaning:
      "an unexpected failure: a bug in release-orchestrator; please report it with the `--verbose` output",
    retry: "no",
    retryWhy: "report it",
  },
  {
    code: 75,
    name: "timeout",
    meaning:
      "timed out waiting for the lock or for the leader; or, for a leader, the lock-queue guard's tries ran out (the app's open transaction blocked every one)",
    retry: "yes",
    retryWhy: "a retry waits again, finds the task done, or finds the blocking transaction ended",
  },
  {
    code: 76,
    name: "leaderFailed",
    meaning: "this process waited on an attempt that failed",
    retry: "yes",
    retryWhy:
      "a new invocation runs a new attempt (auto, leader) or waits for the next one (follower); it succeeds once the cause is fixed",
  },
  {
    code: 77,
    name: "lockLost",
    meaning:
      "ownership was lost during the run (the lease could not be renewed, or the lock session ended); the command was stopped",
    retry: "yes",
    retryWhy: "a retry reads the ledger again and runs or waits",
  },
  {
    code: 78,
    name: "unsafeSetup",
    meaning:
      "unsafe setup refused: a read-only server, or a ledger schema that is not ours or is newer; for `doctor`: a check failed",
    retry: "no",
    retryWhy: "fix the database URL or the schema first",
  },
  {
    code: 130,
    name: "sigint",
    meaning: "interrupted by SIGINT, which was forwarded to the command",
    retry: "yes",
    retryWhy: "interrupted, not done: a retry runs it again or waits",
  },
  {
    code: 143,
    name: "sigterm",
    meaning: "interrupted by SIGTERM, which was forwarded to the command",
    retry: "yes",
    retryWhy: "interrupted, not done: a retry runs it again or waits",
  },
] as const satisfies readonly ExitCodeEntry[];

type Numbered = Extract<(typeof EXIT_CODES)[number], { code: number }>;

/** The name -> code map the code uses everywhere, derived from the table. */
export const ExitCode = Object.freeze(
  Object.fromEntries(EXIT_CODES.flatMap((e) => (typeof e.code === "number" ? [[e.name, e.code]] : []))),
) as { readonly [E in Numbered as E["name"]]: E["code"] };

export type ExitCodeName = keyof typeof ExitCode;

const cell = (text: string) => text.replace(/\|/g, "\\|");

/** The docs' exit-code table (README.md, docs/reference.md), in Markdown. */
export function exitCodesTable(): string {
  const rows = ["| code | name | meaning | retry? |", "| --- | --- | --- | --- |"];
  for (const e of EXIT_CODES) {
    rows.push(`| ${e.code} | \`${e.name}\` | ${cell(e.meaning)} | ${e.retry}: ${cell(e.retryWhy)} |`);
  }
  return rows.join("\n");
}

/** Breaks text into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

/** The epilogue of `run --help`: each code and its meaning, in lines of at most 80 characters. */
export function exitCodesHelp(): string {
  const indent = " ".repeat(11);
  const lines = ["Exit codes:"];
  for (const e of EXIT_CODES) {
    const [first = "", ...rest] = wrap(e.meaning.replace(/`/g, ""), 80 - indent.length);
    lines.push(`  ${String(e.code).padEnd(9)}${first}`, ...rest.map((line) => indent + line));
  }
  return lines.join("\n");
}
