// The parsers of option values: text from a flag, the environment or a file, checked and converted once.

// zod/mini: the same validation as zod, a quarter of its size in the bundle (start-up time matters here).
import * as z from "zod/mini";
import { parseDuration } from "./duration.js";

export const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
export const LOCK_NAME = /^[A-Za-z0-9._:/@+-]{1,200}$/;
export const NAME = /^[A-Za-z0-9._:/@+-]{1,100}$/;

/**
 * Free text shown to people and recorded in the ledger (an app name: `Acme Store`, `boutique-été`):
 * control and bidirectional-override characters removed, runs of white space made one space, at most
 * 100 characters. Never refused: APP_NAME is set by other tools for their own reasons.
 */
export function cleanFreeText(text: string, max = 100): string | undefined {
  const cleaned = text
    .replace(/[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+/gu, " ")
    .replace(/\s+/gu, " ")
    .trim();
  const cut = [...cleaned].slice(0, max).join("").trimEnd();
  return cut === "" ? undefined : cut;
}

/** A parser from text that reports `message(text)` as its one issue when `parse` returns undefined. */
export const fromText = <T>(parse: (text: string) => T | undefined, message: (text: string) => string) =>
  z.pipe(
    z.string(),
    z.transform((text: string, ctx) => {
      const value = parse(text);
      if (value === undefined) {
        ctx.issues.push({ code: "custom", message: message(text), input: text });
        return z.NEVER;
      }
      return value;
    }),
  );

export const duration = (what: string) =>
  fromText(parseDuration, (text) =>
    text.trim().startsWith("-")
      ? `${what} "${text}" is negative; write a duration of zero or more, like 90s, 45m, 1h30m or 500ms`
      : `${what} "${text}" is not a duration; write it like 90s, 45m, 1h30m or 500ms`,
  );

export const choice = <T extends string>(what: string, values: readonly T[]) =>
  fromText(
    (text) => {
      const value = text.trim().toLowerCase();
      return (values as readonly string[]).includes(value) ? (value as T) : undefined;
    },
    (text) => `${what} "${text}" is not one of ${values.join(", ")}`,
  );

export const booleanText = (what: string) =>
  z.pipe(
    z.union([z.boolean(), z.string()]),
    z.transform((value: boolean | string, ctx) => {
      if (typeof value === "boolean") return value;
      const text = value.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(text)) return true;
      if (["false", "0", "no", "off", ""].includes(text)) return false;
      ctx.issues.push({ code: "custom", message: `${what} "${value}" is not true or false`, input: value });
      return z.NEVER;
    }),
  );

export const pattern = (what: string, re: RegExp, rule: string) =>
  z.string().check(z.refine((text: string) => re.test(text), { message: `${what} must be ${rule}` }));

/** A URL's protocol, or "" when it is not a URL; never echoes the text (it may hold a token). */
export function safeProtocol(text: string): string {
  try {
    return new URL(text).protocol;
  } catch {
    return "";
  }
}

export const pathList = z.pipe(
  z.union([z.array(z.string()), z.string()]),
  z.transform((value: string[] | string) =>
    (Array.isArray(value) ? value : [value])
      .flatMap((item) => item.split(/[,\s]+/))
      .filter((item) => item !== ""),
  ),
);

/** A duration, or "off" (null): for a safeguard that can be turned off. */
export const durationOrOff = (what: string) =>
  fromText(
    (text) => (["off", "none", "0"].includes(text.trim().toLowerCase()) ? null : parseDuration(text)),
    (text) => `${what} "${text}" is not a duration or off; write it like 3s, 500ms or off`,
  );
