// The supervisor: a small process between the orchestrator and the command, so that a command never
// outlives its orchestrator. It starts the command in a process group of its own and holds a control
// socket (fd 3) from the orchestrator: when that socket closes (the orchestrator died, even by
// SIGKILL) it ends the whole group within a second. It says how the command ended, and whether it
// ended by itself or was stopped; it can stop the command on its own when the orchestrator misses its
// stop time (a leader without a lock session, see run/claim.ts) and, on a direct connection, holds a
// database session named after the attempt, so that the command's life is visible in the database.
// It runs as `release-orchestrator` itself with RELEASE_ORCHESTRATOR_SUPERVISE=1 (see cli.ts).

import { Socket } from "node:net";
import { createInterface } from "node:readline";
import type pg from "pg";

/** Set in the supervisor's environment, and removed from the command's. */
export const SUPERVISE_ENV = "RELEASE_ORCHESTRATOR_SUPERVISE";
/** How long the group gets after SIGTERM when the orchestrator is gone, before SIGKILL. */
export const ORPHAN_GRACE_MS = 500;

/** What the orchestrator says to the supervisor, one JSON object per line. */
export type ToSupervisor =
  | {
      type: "start";
      file: string;
      args: string[];
      cwd: string;
      /** After the command's own process exits, how long what is left of its group gets before SIGKILL. */
      graceMs: number;
      /** A direct database session to hold while the command runs, named after the attempt. */
      session?: { url: string; applicationName: string; ssl?: boolean | { rejectUnauthorized: false } };
    }
  /** Forward a signal to the command's group. */
  | { type: "signal"; signal: NodeJS.Signals }
  /** Signal the group, then SIGKILL it after graceMs if it still runs. */
  | { type: "stop"; signal: NodeJS.Signals; graceMs: number }
  /** The stop time: unless a newer deadline comes first, stop the command in `inMs` (SIGTERM, then SIGKILL after graceMs). */
  | { type: "deadline"; inMs: number; graceMs: number };

/** What the supervisor says to the orchestrator. */
export type FromSupervisor =
  | { type: "started"; pid: number }
  | { type: "note"; message: string }
  /**
   * The command's own process ended; `byItself` is false once any signal or stop reached it first, and
   * `stoppedBy` names a stop the supervisor made on its own: the stop time passed, or its watch session ended.
   */
  | {
      type: "exit";
      exitCode: number | null;
      signal: string | null;
      byItself: boolean;
      stoppedBy?: SupervisorStop;
      error?: string;
    };

/** A stop the supervisor makes on its own, without being asked. */
export type SupervisorStop = "deadline" | "session" | "orphaned";

/** The supervisor's whole life; resolves with its own exit code once the command's group is gone. */
export async function supervise(): Promise<number> {
  // Signals to our process group (Ctrl-C) are the orchestrator's to forward: never our own end.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => {});
  void import("execa"); // loads while the orchestrator sends the command
  const control = new Socket({ fd: 3, readable: true, writable: true });
  control.on("error", () => {});
  const say = (message: FromSupervisor) => {
    if (!control.destroyed) control.write(`${JSON.stringify(message)}\n`);
  };
  // Every message is kept from the first byte: a signal may come while the command is being started.
  const inbox: { held: ToSupervisor[]; deliver?: (message: ToSupervisor) => void } = { held: [] };
  let first: (message: ToSupervisor | undefined) => void = () => {};
  const started = new Promise<ToSupervisor | undefined>((resolve) => (first = resolve));
  createInterface({ input: control }).on("line", (line) => {
    const message = JSON.parse(line) as ToSupervisor;
    if (message.type === "start") first(message);
    else if (inbox.deliver !== undefined) inbox.deliver(message);
    else inbox.held.push(message);
  });
  let orphaned = false;
  control.once("close", () => {
    orphaned = true;
    first(undefined);
  });
  const start = await started;
  if (start?.type !== "start") return 0; // the orchestrator went away before asking for anything
  const group = await startGroup(start, say);
  const onOrphaned = () =>
    group.stop("SIGTERM", ORPHAN_GRACE_MS, { cause: "orphaned", message: "the orchestrator is gone" });
  inbox.deliver = (message) => group.handle(message);
  for (const message of inbox.held.splice(0)) group.handle(message);
  // The orchestrator is gone (it died, or was killed): end the command now.
  if (orphaned) onOrphaned();
  else control.once("close", onOrphaned);
  const session =
    start.session === undefined ? undefined : await holdSession(start.session, start.graceMs, group, say);
  await group.ended;
  await session?.end().catch(() => {});
  control.end();
  return 0;
}

interface Group {
  handle(message: ToSupervisor): void;
  stop(signal: NodeJS.Signals, graceMs: number, why?: { cause: SupervisorStop; message: string }): void;
  /** Resolves once the command's process has exited and what was left of its group is gone. */
  ended: Promise<void>;
}

/** Starts the command in a process group of its own and keeps it under the orchestrator's word. */
async function startGroup(
  start: Extract<ToSupervisor, { type: "start" }>,
  say: (m: FromSupervisor) => void,
): Promise<Group> {
  const { execa } = await import("execa");
  const env = { ...process.env };
  delete env[SUPERVISE_ENV];
  const child = execa(start.file, start.args, {
    cwd: start.cwd,
    env,
    extendEnv: false,
    detached: true,
    stdio: "inherit",
    reject: false,
  });
  let requested = false;
  let stoppedBy: SupervisorStop | undefined;
  let exited = false;
  let deadline: NodeJS.Timeout | undefined;
  const toGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone already
    }
  };
  const stop = (
    signal: NodeJS.Signals,
    graceMs: number,
    why?: { cause: SupervisorStop; message: string },
  ) => {
    if (why !== undefined && !exited) {
      say({ type: "note", message: why.message });
      stoppedBy ??= why.cause;
    }
    if (!exited) requested = true;
    toGroup(signal);
    setTimeout(() => toGroup("SIGKILL"), graceMs).unref();
  };
  if (child.pid !== undefined) say({ type: "started", pid: child.pid });
  const ended = (async () => {
    const outcome = await child;
    exited = true;
    clearTimeout(deadline);
    say(exitMessage(outcome, requested, stoppedBy));
    // What is left of the group once the command's own process has exited (background jobs that would
    // keep its output open, or ignored a forwarded SIGINT) is part of the command: end it too.
    await endLeftovers(child.pid, start.graceMs);
  })();
  return {
    stop,
    ended,
    handle(message) {
      if (message.type === "signal") {
        if (!exited) requested = true;
        toGroup(message.signal);
      } else if (message.type === "stop") {
        stop(message.signal, message.graceMs);
      } else if (message.type === "deadline") {
        clearTimeout(deadline);
        deadline = setTimeout(
          () =>
            stop("SIGTERM", message.graceMs, {
              cause: "deadline",
              message:
                "this process did not renew its lease in time (paused or frozen?): its supervisor stops the command",
            }),
          message.inMs,
        );
      }
    },
  };
}

/** How the command's own process ended, as the orchestrator learns it. */
function exitMessage(
  outcome: {
    exitCode?: number | undefined;
    signal?: string | undefined;
    shortMessage?: string;
    message?: string;
  },
  requested: boolean,
  stoppedBy: SupervisorStop | undefined,
): FromSupervisor {
  return {
    type: "exit",
    exitCode: typeof outcome.exitCode === "number" ? outcome.exitCode : null,
    signal: outcome.signal ?? null,
    byItself: !requested,
    ...(stoppedBy === undefined ? {} : { stoppedBy }),
    // Neither an exit code nor a signal: it could not be started at all.
    ...(outcome.exitCode === undefined && outcome.signal === undefined
      ? { error: outcome.shortMessage ?? outcome.message ?? "it could not be started" }
      : {}),
  };
}

/** SIGTERM to what is left of the group, SIGKILL after the grace; resolves when none of it is left. */
async function endLeftovers(pid: number | undefined, graceMs: number): Promise<void> {
  if (pid === undefined) return;
  const alive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(-pid, "SIGTERM");
  const killAt = Date.now() + graceMs;
  const { setTimeout: sleep } = await import("node:timers/promises");
  while (alive()) {
    if (Date.now() >= killAt) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        return;
      }
    }
    await sleep(50);
  }
}

/**
 * Holds a database session named after the attempt while the command runs: a taker counts it as the
 * command's, and ending it (--orphan-sessions terminate) stops the command. Losing it stops the command
 * too: its leader's lock session went with it, or somebody ended it on purpose.
 */
async function holdSession(
  session: NonNullable<Extract<ToSupervisor, { type: "start" }>["session"]>,
  graceMs: number,
  group: Group,
  say: (m: FromSupervisor) => void,
): Promise<pg.Client | undefined> {
  const { default: pgModule } = await import("pg");
  const client = new pgModule.Client({
    connectionString: session.url,
    application_name: session.applicationName,
    connectionTimeoutMillis: 5000,
    keepAlive: true,
    ...(session.ssl === undefined ? {} : { ssl: session.ssl }),
  });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    say({
      type: "note",
      message: `could not open the command's watch session (${(error as Error).message})`,
    });
    return undefined;
  }
  const lost = () =>
    group.stop("SIGTERM", graceMs, {
      cause: "session",
      message:
        "the command's watch session ended (terminated, or the database went away): its supervisor stops the command",
    });
  client.on("end", lost);
  void group.ended.then(() => client.off("end", lost));
  return client;
}
