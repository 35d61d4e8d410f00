// Runs the wrapped command in its own process group: output streams through unchanged while a
// bounded tail is kept for the ledger; the whole group can be signalled and, after a grace, killed.

import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { constants as osConstants } from "node:os";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import type { ResultPromise } from "execa";
import type { Command } from "../core/config.js";
import { UsageError } from "../core/errors.js";

/** How much of the command's output the ledger keeps. */
export const OUTPUT_TAIL_BYTES = 16 * 1024;

export interface CommandResult {
  /** Exit code, or 128 + signal number when the command was killed by a signal. */
  exitCode: number;
  /** The signal that killed it, if any. */
  signal: string | null;
  /** The last OUTPUT_TAIL_BYTES of stdout and stderr, interleaved as they arrived. */
  outputTail: string;
}

/** The command as one line of text, for the ledger and messages. */
export function describeCommand(command: Command): string {
  if (command.kind === "shell") return command.script;
  return [command.file, ...command.args]
    .map((word) => (/^[\w./:=@+-]+$/.test(word) ? word : JSON.stringify(word)))
    .join(" ");
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Checks before anything is locked or recorded that the command can be started; throws UsageError. */
export function checkCommand(
  command: Command,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): void {
  const file = command.kind === "shell" ? "sh" : command.file;
  if (file.includes("/")) {
    const path = isAbsolute(file) ? file : resolve(cwd, file);
    try {
      statSync(path);
    } catch {
      throw new UsageError(`The command ${file} does not exist; check the path after --.`);
    }
    if (!isExecutableFile(path))
      throw new UsageError(`The command ${file} is not an executable file; chmod +x it or fix the path.`);
    return;
  }
  const dirs = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  if (dirs.some((dir) => isExecutableFile(join(resolve(cwd, dir), file)))) return;
  throw new UsageError(`The command ${file} was not found on PATH; check its spelling or install it.`);
}

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - (this.chunks[0]?.length ?? 0) >= this.max) {
      this.size -= this.chunks.shift()?.length ?? 0;
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    const start = Math.max(0, all.length - this.max);
    // PostgreSQL text cannot hold NUL bytes; a cut multi-byte character decodes to U+FFFD.
    return all.subarray(start).toString("utf8").replace(/\0/g, "");
  }
}

/**
 * Every chunk read from the command is a fresh 64 KiB buffer outside the V8 heap, freed only when a
 * garbage collection runs; V8 lets tens of MB of them pile up first. A minor collection every few MB
 * of output keeps the orchestrator's memory flat however much the command prints.
 */
function collector(): (bytes: number) => void {
  let gc: ((options?: { type: "minor" | "major" }) => void) | undefined;
  try {
    v8.setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as typeof gc;
  } catch {
    gc = undefined;
  }
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since >= GC_EVERY_BYTES && gc !== undefined) {
      since = 0;
      gc({ type: "minor" });
    }
  };
}
const GC_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * Streams the command's output to ours, with backpressure (a slow reader slows the command, as a pipe
 * would), and keeps every chunk for the tail. When our side is closed (`run ... | head -c 5`: EPIPE)
 * the output is still read to the end, so the command is never blocked on a full pipe, and still
 * kept for the ledger; it is only no longer shown. (Readable.pipe would stop reading instead.)
 */
function forward(
  source: NodeJS.ReadableStream,
  target: NodeJS.WritableStream & { destroyed: boolean; writable: boolean },
  onChunk: (chunk: Buffer) => void,
): void {
  let closed = false;
  const close = () => {
    closed = true;
    source.resume();
  };
  target.on("error", close);
  target.on("close", close);
  source.once("end", () => {
    target.off("error", close);
    target.off("close", close);
  });
  source.on("data", (chunk: Buffer) => {
    onChunk(chunk);
    if (closed || target.destroyed || !target.writable) return;
    if (!target.write(chunk)) {
      source.pause();
      target.once("drain", () => source.resume());
    }
  });
}

/** How the command ended, with the tail of its output; a command that could not start at all is 127. */
async function resultOf(child: ResultPromise, tail: Tail): Promise<CommandResult> {
  const outcome = await child;
  const signal = outcome.signal ?? null;
  let exitCode: number;
  if (typeof outcome.exitCode === "number") exitCode = outcome.exitCode;
  else if (signal !== null) exitCode = 128 + (osConstants.signals[signal] ?? 0);
  else exitCode = 127; // could not be started at all
  let outputTail = tail.text();
  if (outcome.exitCode === undefined && signal === null && outcome.message) {
    outputTail += `\n[release-orchestrator] ${outcome.shortMessage ?? outcome.message}`;
  }
  return { exitCode, signal, outputTail };
}

export interface StartedCommand {
  pid: number | undefined;
  result: Promise<CommandResult>;
  /** Sends a signal to the command's whole process group. */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM to the group, then SIGKILL after `graceMs` if it is still alive; resolves when it has exited. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<CommandResult>;
}

let execaModule: Promise<typeof import("execa")> | undefined;
/** Loads execa once; a leader starts it early, so that it loads while the database answers. */
export function loadExeca(): Promise<typeof import("execa")> {
  execaModule ??= import("execa");
  return execaModule;
}

/** Starts the command; execa is loaded only here, so processes that never run a command never load it. */
export async function startCommand(
  command: Command,
  options: {
    env: Record<string, string | undefined>;
    cwd: string;
    /** After the command's own process exits, how long what is left of its group gets before SIGKILL. */
    graceMs: number;
  },
): Promise<StartedCommand> {
  const { execa } = await loadExeca();
  const [file, args] =
    command.kind === "shell" ? ["sh", ["-c", command.script]] : [command.file, command.args];
  const child: ResultPromise = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    detached: true,
    stdin: "inherit",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
    stripFinalNewline: false,
  });
  const tail = new Tail(OUTPUT_TAIL_BYTES);
  const collect = collector();
  const onChunk = (chunk: Buffer) => {
    tail.push(chunk);
    collect(chunk.length);
  };
  if (child.stdout) forward(child.stdout, process.stdout, onChunk);
  if (child.stderr) forward(child.stderr, process.stderr, onChunk);

  let exited = false;
  const result = resultOf(child, tail).finally(() => {
    exited = true;
  });

  const sendToGroup = (signal: NodeJS.Signals, evenAfterExit = false) => {
    if (child.pid === undefined || (exited && !evenAfterExit)) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // The group is gone already.
    }
  };

  // What is left of the group once the command's own process has exited (background jobs that would
  // keep its output open, or ignored a forwarded SIGINT) is part of the command: end it too.
  child.on("exit", () => {
    sendToGroup("SIGTERM", true);
    setTimeout(() => sendToGroup("SIGKILL", true), options.graceMs).unref();
  });

  return {
    pid: child.pid,
    result,
    signal: sendToGroup,
    async stop(signal, graceMs) {
      sendToGroup(signal);
      const timer = setTimeout(() => sendToGroup("SIGKILL"), graceMs);
      try {
        return await result;
      } finally {
        clearTimeout(timer);
        // Grandchildren that outlived the group leader still get the signal.
        sendToGroup("SIGKILL", true);
      }
    },
  };
}
