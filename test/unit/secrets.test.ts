// The password in every spelling: property tests over random passwords and random ways of writing
// them (percent-encoding of any subset of characters in either hex case, JSON, shell, HTML), and the
// rule for plain passwords (masked as values, ordinary words left alone).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createReporter } from "../../src/core/reporter.js";
import { createScrubber, isDistinctive, maskUrlPasswords, MASK, passwordOf } from "../../src/core/secrets.js";

/** At least 1,000 random cases per property, in CI as locally; a busy CI machine needs more than 5 s. */
const RUNS = { numRuns: 1000 };
const SLOW = { timeout: 60_000 };

/** Characters a password may hold: printable ASCII (URL delimiters and quotes included) and beyond. */
const passwordChar = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
  },
  { weight: 4, arbitrary: fc.constantFrom(..."!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ") },
  { weight: 1, arbitrary: fc.constantFrom("é", "ß", "€", "日", "😀", "\t", "\n") },
);
const distinctivePassword = fc
  .array(passwordChar, { minLength: 8, maxLength: 24 })
  .map((chars) => chars.join(""))
  .filter(isDistinctive);

/** A valid percent-encoding: each character literal or encoded (UTF-8 bytes), hex digits in either case. */
function percentEncode(password: string, encode: boolean[], upper: boolean[]): string {
  return [...password]
    .map((char, i) => {
      const mustEncode = /[%@/:?#\s"'<>\\^`{|}[\]]/.test(char) || char.charCodeAt(0) > 0x7e;
      if (!mustEncode && !(encode[i % encode.length] ?? false)) return char;
      return [...Buffer.from(char, "utf8")]
        .map((byte) => {
          const hex = byte.toString(16).padStart(2, "0");
          return `%${(upper[i % upper.length] ?? false) ? hex.toUpperCase() : hex}`;
        })
        .join("");
    })
    .join("");
}

const shellSingleQuote = (text: string) => `'${text.replace(/'/g, "'\\''")}'`;
const shellDoubleQuote = (text: string) => `"${text.replace(/["\\$`]/g, "\\$&")}"`;
const html = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
/** JSON with every non-ASCII character as \u escapes, as some log shippers write it. */
const asciiJson = (text: string) =>
  JSON.stringify(text).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );

/** Every spelling the password must never be seen in. */
function spellings(password: string, encoded: string): string[] {
  return [
    password,
    encoded,
    encodeURIComponent(password),
    JSON.stringify(password).slice(1, -1),
    JSON.stringify(JSON.stringify(password)).slice(1, -1),
    JSON.stringify(encoded).slice(1, -1),
  ];
}

describe("the password scrubber", () => {
  it("masks a distinctive password in every spelling, wherever the tool writes it", SLOW, () => {
    fc.assert(
      fc.property(
        distinctivePassword,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        (password, encode, upper, before, after) => {
          const encoded = percentEncode(password, encode, upper);
          const url = `postgres://user:${encoded}@db.example.com:5432/app`;
          const known = passwordOf(url);
          expect(known).toBe(password);
          const scrubber = createScrubber();
          scrubber.add(known);
          const texts = [
            `${before}${password}${after}`,
            `${before}${encoded}${after}`,
            `running psql ${url} -c 'select 1'`,
            `sh -c ${shellSingleQuote(`psql ${password}`)}`,
            `sh -c ${shellDoubleQuote(`PGPASSWORD=${password} psql`)}`,
            JSON.stringify({ command: `psql ${password}`, tail: `${before}${encoded}${after}` }),
            JSON.stringify({ nested: JSON.stringify({ command: ["psql", password] }) }),
            asciiJson(`x ${password} y`),
            `<td>${html(password)}</td>`,
          ];
          for (const text of texts) {
            const out = scrubber.scrub(text);
            for (const spelling of spellings(password, encoded)) {
              expect(out.includes(spelling), `${JSON.stringify(spelling)} in ${JSON.stringify(out)}`).toBe(
                false,
              );
            }
          }
        },
      ),
      RUNS,
    );
  });

  it("masks every spelling in the reporter's terminal lines and --json events", SLOW, () => {
    fc.assert(
      fc.property(
        distinctivePassword,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (password, encode, upper, json) => {
          const encoded = percentEncode(password, encode, upper);
          const lines: string[] = [];
          const reporter = createReporter({ json, write: (text) => lines.push(text), tty: false });
          reporter.addSecret(passwordOf(`postgres://u:${encoded}@h/db`));
          reporter.setApp("s-app");
          reporter.setContext({ role: "leader", task: "migrate", release: "abc" });
          reporter.info(`running migrate: psql postgres://u:${encoded}@h/db`, {
            command: `psql ${password}`,
          });
          reporter.warn(`lost ${encoded}; "${password}"`);
          reporter.error(`bad ${password}`, { event: "error", exitCode: 69 });
          const ledgerColumn = reporter.redact(`output ${password} and ${encoded}`);
          for (const out of [...lines, ledgerColumn]) {
            for (const spelling of spellings(password, encoded)) {
              expect(out.includes(spelling), `${JSON.stringify(spelling)} in ${out}`).toBe(false);
            }
          }
        },
      ),
      RUNS,
    );
  });

  it(
    "masks a plain or short password where it stands as a value, and leaves ordinary words alone",
    SLOW,
    () => {
      const plain = fc.oneof(
        fc.constantFrom("migrate", "postgres", "secret", "a", "pw", "release", "for", "password"),
        fc.stringMatching(/^[a-z]{1,7}$/),
      );
      fc.assert(
        fc.property(plain, (password) => {
          const scrubber = createScrubber();
          scrubber.add(password);
          const prose = `running ${password} for release ${password}s; migrations (${password}) done`;
          expect(scrubber.scrub(prose)).toBe(prose);
          const cases: [string, string][] = [
            [`postgres://u:${password}@h/db`, `postgres://u:${MASK}@h/db`],
            [`PGPASSWORD=${password} psql`, `PGPASSWORD=${MASK} psql`],
            [`--password=${password}`, `--password=${MASK}`],
            [JSON.stringify({ password }), `{"password":"${MASK}"}`],
            [`password: '${password}'`, `password: '${MASK}'`],
          ];
          for (const [text, expected] of cases) expect(scrubber.scrub(text)).toBe(expected);
        }),
        RUNS,
      );
    },
  );

  it("masks the password of any URL, known or not, whatever its length", () => {
    expect(maskUrlPasswords("see postgres://app:x@db/app and https://me:t0k3n@github.com/r.git")).toBe(
      `see postgres://app:${MASK}@db/app and https://me:${MASK}@github.com/r.git`,
    );
    expect(maskUrlPasswords("postgres://app:p@ss@db/app")).toBe(`postgres://app:${MASK}@db/app`);
    expect(maskUrlPasswords("postgres://app@db/app, mailto:a@b.c, 12:30@home")).toBe(
      "postgres://app@db/app, mailto:a@b.c, 12:30@home",
    );
    // Placeholders in advice stay readable, unless the password really is one.
    const advice = "write it as postgres://user:password@host:5432/dbname or postgres://u:$PGPASSWORD@h/db";
    expect(maskUrlPasswords(advice)).toBe(advice);
    expect(maskUrlPasswords("postgres://u:password@h/db", new Set(["password"]))).toBe(
      `postgres://u:${MASK}@h/db`,
    );
  });

  it("reads the password as node-postgres does: decoded, from an empty-host URL, or from ?password=", () => {
    expect(passwordOf("postgres://leaky:p%40ss%2fw%25rd@h/db")).toBe("p@ss/w%rd");
    expect(passwordOf("postgres://u:Secret%21Pass@/db?host=/run/pg")).toBe("Secret!Pass");
    expect(passwordOf("postgres://u@h/db?sslmode=require&password=a%20b+c")).toBe("a b c");
    expect(passwordOf("postgres://u:100%@h/db")).toBe("100%");
    expect(passwordOf("postgres://u@h/db")).toBeUndefined();
    expect(passwordOf(undefined)).toBeUndefined();
  });

  it("calls distinctive what is long enough and not a plain word", () => {
    expect(isDistinctive("p@ss/w%rd")).toBe(true);
    expect(isDistinctive("Secret!Pass")).toBe(true);
    expect(isDistinctive("postgres")).toBe(false);
    expect(isDistinctive("migrate")).toBe(false);
    expect(isDistinctive("abc12")).toBe(false);
    expect(isDistinctive("correcthorsebatterystaple")).toBe(true);
  });
});
