// What the user sees from the orchestrator itself: one-line messages on stderr, prefixed with
// "[release] <app>:", scrubbed of secrets; or, with --json, one JSON event per line for log drains.
// The command's own output never passes through here. A closed stderr (EPIPE) is not an error.

import type { EventName } from "./events.js";
import { createScrubber } from "./secrets.js";

export type Level = "info" | "warn" | "error" | "debug";

/** Structured fields of a message: `event` names it for --json consumers, one of EVENTS (src/core/events.ts). */
export type Fields = { event?: EventName } & Record<string, unknown>;

export interface Reporter {
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  debug(message: string, fields?: Fields): void;
  /**
   * A progress line while waiting. On a terminal it is redrawn in place; elsewhere (Heroku logs, CI)
   * it is printed as a plain line, and with --json as a "waiting" event. Callers decide how often.
   */
  progress(message: string, fields?: Fields): void;
  /** Ends an in-place progress line so that the next message starts on a clean line. */
  endProgress(): void;
  /** True when progress is redrawn in place (callers refresh it every second rather than every 10 s). */
  readonly live: boolean;
  /** Adds a secret (a database password) that must never be printed; see src/secrets.ts for the rule. */
  addSecret(secret: string | undefined): void;
  /** Masks every spelling of every known secret and every URL password; also used for what goes into the ledger. */
  redact(text: string): string;
  setApp(app: string): void;
  /**
   * Fields every --json event carries from now on (role, task, release...); undefined removes one.
   * Messages keep them out of their text: they are for log drains.
   */
  setContext(fields: Record<string, unknown>): void;
  configure(options: Partial<Pick<ReporterOptions, "verbose" | "json" | "quiet">>): void;
}

export interface ReporterOptions {
  verbose: boolean;
  json: boolean;
  quiet: boolean;
  /** Colour on a terminal unless NO_COLOR is set; default from the environment. */
  color?: boolean;
  /** Whether stderr is a terminal; default process.stderr.isTTY. */
  tty?: boolean;
  write?: (text: string) => void;
  now?: () => Date;
}

/** Writes to stderr unless it was closed (a reader that went away, `2>&- `): then the text is dropped. */
function writeStderr(text: string): void {
  if (process.stderr.destroyed || !process.stderr.writable) return;
  process.stderr.write(text);
}

const COLORS: Record<Level, string> = { info: "", warn: "\x1b[33m", error: "\x1b[31m", debug: "\x1b[2m" };
const RESET = "\x1b[0m";

/** One line of output: "[release] <app>: warning: ..." (coloured on a terminal), or a --json event. */
export function formatLine(
  level: Level,
  message: string,
  fields: Fields | undefined,
  s: { json: boolean; color: boolean; app: string | undefined; context: Record<string, unknown>; time: Date },
): string {
  if (s.json) {
    // Every line is an event: a message without a name of its own is named by its level.
    const { event, ...rest } = fields ?? {};
    const name: EventName = event ?? (level === "warn" ? "warning" : level === "info" ? "message" : level);
    const record = {
      time: s.time.toISOString(),
      level,
      event: name,
      app: s.app,
      ...s.context,
      message,
      ...rest,
    };
    return `${JSON.stringify(record)}\n`;
  }
  const who = s.app === undefined ? "" : ` ${s.app}:`;
  const tag = level === "info" ? "" : ` ${level === "warn" ? "warning" : level}:`;
  const line = `[release]${who}${tag} ${message}`;
  return s.color && COLORS[level] !== "" ? `${COLORS[level]}${line}${RESET}\n` : `${line}\n`;
}

export function createReporter(initial: Partial<ReporterOptions> = {}): Reporter {
  const options: ReporterOptions = { verbose: false, json: false, quiet: false, ...initial };
  const tty = options.tty ?? process.stderr.isTTY === true;
  const color =
    options.color ??
    (tty &&
      (process.env.NO_COLOR === undefined || process.env.NO_COLOR === "") &&
      process.env.TERM !== "dumb");
  const write = options.write ?? writeStderr;
  const now = options.now ?? (() => new Date());
  const scrubber = createScrubber();
  const context: Record<string, unknown> = {};
  let app: string | undefined;
  let progressShown = false;

  const redact = (text: string) => scrubber.scrub(text);

  const clearProgress = () => {
    if (progressShown) {
      write("\r\x1b[K");
      progressShown = false;
    }
  };

  const emit = (level: Level, message: string, fields?: Fields) => {
    if (level === "debug" && !options.verbose) return;
    if (level === "info" && options.quiet) return;
    clearProgress();
    write(
      redact(formatLine(level, message, fields, { json: options.json, color, app, context, time: now() })),
    );
  };

  return {
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
    debug: (message, fields) => emit("debug", message, fields),
    progress: (message, fields) => {
      if (options.quiet) return;
      if (tty && !options.json) {
        const who = app === undefined ? "" : ` ${app}:`;
        const columns = process.stderr.columns ?? 120;
        const line = redact(`[release]${who} ${message}`);
        write(`\r\x1b[K${line.length > columns - 1 ? `${line.slice(0, columns - 2)}…` : line}`);
        progressShown = true;
        return;
      }
      emit("info", message, { event: "waiting", ...fields });
    },
    endProgress: clearProgress,
    get live() {
      return tty && !options.json && !options.quiet;
    },
    addSecret: (secret) => scrubber.add(secret),
    redact,
    setApp: (name) => {
      app = name;
    },
    setContext: (fields) => {
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) delete context[key];
        else context[key] = value;
      }
    },
    configure: (changes) => {
      Object.assign(options, Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)));
    },
  };
}
