// Typed errors: each class carries its exit code; the CLI maps them in one place.

import { ExitCode } from "./exit-codes.js";

/** An error we expected and can explain in one sentence; `exitCode` is what the CLI exits with. */
export class ReleaseError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flags, environment or `.env`; nothing was run. Carries every problem found at once. */
export class UsageError extends ReleaseError {
  readonly problems: readonly string[];
  constructor(problems: string | readonly string[]) {
    const list = typeof problems === "string" ? [problems] : problems;
    super(list.join("\n"), ExitCode.usage);
    this.problems = list;
  }
}

export class DatabaseUnavailableError extends ReleaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.databaseUnavailable, options);
  }
}

export class UnsafeSetupError extends ReleaseError {
  constructor(message: string) {
    super(message, ExitCode.unsafeSetup);
  }
}
