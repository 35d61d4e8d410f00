// Child processes with timestamps: when each was spawned, when each of its stderr lines arrived and
// when it exited, all on one clock (now()). Every child started here is killed if the bench dies.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** Milliseconds since the epoch with sub-millisecond resolution (comparable to PostgreSQL's clock). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

// The one sleep of the bench: Node's own.
export { setTimeout as sleep } from "node:timers/promises";

/** Resolves as `promise` does, or rejects after `timeoutMs`; the timer never outlives the race. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface Proc {
  readonly pid: number;
  readonly spawnedAt: number;
  /** Output lines so far (stderr; stdout too when asked for). */
  readonly lines: string[];
  /** The same lines with the time each arrived. */
  readonly lineTimes: { line: string; at: number }[];
  readonly exited: Promise<ExitInfo>;
  /** Set once the process has exited. */
  exit: ExitInfo | undefined;
  /** Resolves when a line satisfies `test` (lines already seen count), rejects after `timeoutMs`. */
  waitFor(test: (line: string, all: readonly string[]) => boolean, timeoutMs: number): Promise<void>;
  onLine(listener: (line: string) => void): void;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Keep stdout (default: discarded). */
  stdout?: boolean;
}

const live = new Set<ChildProcess>();
let hooked = false;

/** SIGTERM to every child still running (the orchestrator forwards it to its command), then SIGKILL. */
export async function stopAllProcesses(graceMs = 3000): Promise<void> {
  const children = [...live];
  const gone = Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) =>
          child.exitCode !== null || child.signalCode !== null
            ? resolve()
            : child.once("exit", () => resolve()),
        ),
    ),
  );
  for (const child of children) child.kill("SIGTERM");
  await withTimeout(gone, graceMs, "children still running").catch(() => {
    for (const child of children) child.kill("SIGKILL");
  });
}

function killAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

export function startProcess(command: string, args: readonly string[], options: SpawnOptions): Proc {
  killAllOnExit();
  const spawnedAt = now();
  const child = spawn(command, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: ["ignore", options.stdout === true ? "pipe" : "ignore", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  live.add(child);
  const lines: string[] = [];
  const lineTimes: { line: string; at: number }[] = [];
  const listeners = new Set<(line: string) => void>();
  const onLine = (line: string): void => {
    lines.push(line);
    lineTimes.push({ line, at: now() });
    for (const listener of listeners) listener(line);
  };
  if (child.stderr !== null) createInterface({ input: child.stderr }).on("line", onLine);
  if (child.stdout !== null) createInterface({ input: child.stdout }).on("line", onLine);
  const proc: Proc = {
    pid: child.pid,
    spawnedAt,
    lines,
    lineTimes,
    exit: undefined,
    exited: new Promise<ExitInfo>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => {
        const info = { code, signal, at: now() };
        live.delete(child);
        proc.exit = info;
        resolve(info);
      });
    }),
    onLine: (listener) => {
      listeners.add(listener);
    },
    waitFor(test, timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        if (lines.some((line) => test(line, lines))) return resolve();
        const listener = (line: string): void => {
          if (!test(line, lines)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `pid ${proc.pid}: no expected output within ${timeoutMs} ms; last lines:\n${lines.slice(-8).join("\n")}`,
            ),
          );
        }, timeoutMs);
        const onExit = (): void => {
          cleanup();
          reject(
            new Error(
              `pid ${proc.pid} exited (${proc.exit?.code ?? proc.exit?.signal}) before the expected output; last lines:\n${lines.slice(-8).join("\n")}`,
            ),
          );
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          listeners.delete(listener);
          child.off("exit", onExit);
        };
        listeners.add(listener);
        child.once("exit", onExit);
      });
    },
    kill(signal = "SIGTERM") {
      if (proc.exit === undefined) child.kill(signal);
    },
  };
  return proc;
}

/** What a failed process said: its first line that names an error, else its last line. */
export function lastWords(proc: Proc): string {
  return (proc.lines.find((line) => /error/i.test(line)) ?? proc.lines.at(-1) ?? "(no output)").trim();
}

/** Runs a process to its end; returns how long it took from spawn to exit. */
export async function timeProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptions,
): Promise<{ ms: number; proc: Proc; exit: ExitInfo }> {
  const proc = startProcess(command, args, options);
  const exit = await proc.exited;
  return { ms: exit.at - proc.spawnedAt, proc, exit };
}

/** Kills what is still running of `procs` and waits for it to be gone. */
export async function killAll(procs: readonly Proc[]): Promise<void> {
  for (const proc of procs) proc.kill("SIGTERM");
  const gone = Promise.all(procs.map((p) => p.exited.catch(() => undefined)));
  await withTimeout(gone, 5000, "processes did not end after SIGTERM").catch(() => {
    for (const proc of procs) proc.kill("SIGKILL");
  });
  await gone;
}
