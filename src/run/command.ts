// Runs the wrapped command through its supervisor (supervisor.ts), in a process group of its own:
// output streams through unchanged while a bounded tail is kept for the ledger; the whole group can
// be signalled and, after a grace, killed; and it never outlives this process.

import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { constants as osConstants } from "node:os";
import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import type { Command } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import { SUPERVISE_ENV, type FromSupervisor, type SupervisorStop, type ToSupervisor } from "./supervisor.js";

/** How much of the command's output the ledger keeps. */
export const OUTPUT_TAIL_BYTES = 16 * 1024;

export interface CommandResult {
  /** Exit code, or 128 + signal number when the command was killed by a signal. */
  exitCode: number;
  /** The signal that killed it, if any. */
  signal: string | null;
  /** The last OUTPUT_TAIL_BYTES of stdout and stderr, interleaved as they arrived. */
  outputTail: string;
  /** True when it ended by itself: no signal or stop reached it first (a lead that lost ownership may still record it). */
  byItself: boolean;
  /** A stop its supervisor made on its own (see supervisor.ts). */
  stoppedBy?: SupervisorStop | undefined;
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

export interface StartedCommand {
  result: Promise<CommandResult>;
  /** Sends a signal to the command's whole process group. */
  signal(signal: NodeJS.Signals): void;
  /** The signal to the group, then SIGKILL after `graceMs` if it is still alive; resolves when it has exited. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<CommandResult>;
  /** The stop time, for the supervisor to enforce if this process cannot (it stops the command in `inMs`). */
  deadline(inMs: number, graceMs: number): void;
}

/** How to start the supervisor: this very program (`node dist/cli.js`, or the standalone binary). */
export interface SupervisorEntry {
  file: string;
  args: string[];
}

export interface StartOptions {
  env: Record<string, string | undefined>;
  cwd: string;
  /** After the command's own process exits, how long what is left of its group gets before SIGKILL. */
  graceMs: number;
  supervisor: SupervisorEntry;
  /** A direct database session for the supervisor to hold while the command runs (see supervisor.ts). */
  session?: Extract<ToSupervisor, { type: "start" }>["session"];
  /** What the supervisor says on the way (it stopped the command, its session ended...). */
  onNote?: (message: string) => void;
}

/** Starts the command under its supervisor; the supervisor is this program with SUPERVISE_ENV set. */
export function startCommand(command: Command, options: StartOptions): StartedCommand {
  const [file, args] =
    command.kind === "shell" ? ["sh", ["-c", command.script]] : [command.file, command.args];
  const child = spawn(options.supervisor.file, options.supervisor.args, {
    cwd: options.cwd,
    env: { ...options.env, [SUPERVISE_ENV]: "1" },
    stdio: ["inherit", "pipe", "pipe", "pipe"],
  });
  const control = child.stdio[3] as Duplex;
  const tell = (message: ToSupervisor) => {
    if (!control.destroyed && control.writable) control.write(`${JSON.stringify(message)}\n`);
  };
  control.on("error", () => {});
  tell({
    type: "start",
    file,
    args,
    cwd: options.cwd,
    graceMs: options.graceMs,
    ...(options.session ? { session: options.session } : {}),
  });
  const tail = new Tail(OUTPUT_TAIL_BYTES);
  const collect = collector();
  const onChunk = (chunk: Buffer) => {
    tail.push(chunk);
    collect(chunk.length);
  };
  if (child.stdout) forward(child.stdout, process.stdout, onChunk);
  if (child.stderr) forward(child.stderr, process.stderr, onChunk);
  const said = listen(control, options.onNote);
  let exited = false;
  const result = resultOf(child, said, tail).finally(() => {
    exited = true;
  });
  return {
    result,
    signal: (signal) => {
      if (!exited) tell({ type: "signal", signal });
    },
    async stop(signal, graceMs) {
      if (!exited) tell({ type: "stop", signal, graceMs });
      return result;
    },
    deadline: (inMs, graceMs) => {
      if (!exited) tell({ type: "deadline", inMs: Math.max(0, inMs), graceMs });
    },
  };
}

/** The supervisor's word: the command's pid once started, and how it ended. */
function listen(control: Duplex, onNote: ((message: string) => void) | undefined) {
  const said: { pid?: number; exit?: Extract<FromSupervisor, { type: "exit" }> } = {};
  createInterface({ input: control }).on("line", (line) => {
    let message: FromSupervisor;
    try {
      message = JSON.parse(line) as FromSupervisor;
    } catch {
      return;
    }
    if (message.type === "started") said.pid = message.pid;
    else if (message.type === "exit") said.exit = message;
    else onNote?.(message.message);
  });
  return said;
}

/**
 * How the command ended, once the supervisor exited and every output stream closed: as the supervisor
 * said, or, when the supervisor itself died without saying (killed), its group is killed here.
 */
function resultOf(child: ChildProcess, said: ReturnType<typeof listen>, tail: Tail): Promise<CommandResult> {
  return new Promise((resolve) => {
    let startError: string | undefined;
    child.once("error", (error) => {
      startError = error.message;
    });
    child.once("close", (code, signal) => {
      const exit = said.exit;
      let outputTail = tail.text();
      if (exit === undefined) {
        if (said.pid !== undefined) killGroup(said.pid);
        const why =
          startError ??
          `its supervisor ended ${signal === null ? `with code ${code ?? "?"}` : `by ${signal}`}`;
        outputTail += `\n[release-orchestrator] the command did not report its end: ${why}`;
        resolve({
          exitCode: signal === null ? 127 : 128 + (osConstants.signals[signal] ?? 0),
          signal,
          outputTail,
          byItself: false,
        });
        return;
      }
      const exitSignal = exit.signal;
      let exitCode: number;
      if (exit.exitCode !== null) exitCode = exit.exitCode;
      else if (exitSignal !== null) exitCode = 128 + (osConstants.signals[exitSignal as NodeJS.Signals] ?? 0);
      else exitCode = 127; // could not be started at all
      if (exit.error !== undefined) outputTail += `\n[release-orchestrator] ${exit.error}`;
      resolve({
        exitCode,
        signal: exitSignal,
        outputTail,
        byItself: exit.byItself,
        stoppedBy: exit.stoppedBy,
      });
    });
  });
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}
