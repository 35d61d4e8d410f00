// What the user sees from the orchestrator itself: one-line messages on stderr, prefixed with
// "[release] <app>:", scrubbed of secrets. The command's own output never passes through here.

export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug(message: string): void;
  /** Adds a secret (a database password) that must never be printed. */
  addSecret(secret: string | undefined): void;
  /** Replaces every known secret in a text; also used for what goes into the ledger. */
  redact(text: string): string;
  setApp(app: string): void;
  setVerbose(verbose: boolean): void;
}

export interface ReporterOptions {
  verbose: boolean;
  write?: (line: string) => void;
}

export function createReporter(options: ReporterOptions): Reporter {
  const secrets = new Set<string>();
  let verbose = options.verbose;
  let app: string | undefined;
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const redact = (text: string) => {
    let out = text;
    for (const secret of secrets) {
      out = out.split(secret).join("*****");
      const encoded = encodeURIComponent(secret);
      if (encoded !== secret) out = out.split(encoded).join("*****");
    }
    return out;
  };
  const emit = (level: string, message: string) => {
    const who = app === undefined ? "" : ` ${app}:`;
    const tag = level === "" ? "" : ` ${level}:`;
    write(`${redact(`[release]${who}${tag} ${message}`)}\n`);
  };
  return {
    info: (message) => emit("", message),
    warn: (message) => emit("warning", message),
    error: (message) => emit("error", message),
    debug: (message) => {
      if (verbose) emit("debug", message);
    },
    addSecret: (secret) => {
      if (secret !== undefined && secret.length >= 3) secrets.add(secret);
    },
    redact,
    setApp: (name) => {
      app = name;
    },
    setVerbose: (value) => {
      verbose = value;
    },
  };
}
