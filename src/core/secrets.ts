// Secrets: the one rule for what the terminal, JSON events, the ledger, the status page and the API
// never show. A database password is matched in every spelling it can take in text: decoded, any
// percent-encoding (either hex case, unreserved characters encoded or not, the form written in the
// URL), JSON-quoted, shell-escaped and HTML-escaped; and any URL's password is masked, known or not.
//
// The rule, and its limit (also in docs/how-it-works.md, "Secrets"):
// - Every `scheme://user:password@` in any text shows `scheme://user:*****@`, whatever the password.
// - A distinctive password (at least 8 characters and not only letters, or at least 16 characters)
//   is masked wherever any spelling of it occurs, even inside a longer word.
// - Any other password (short, or a plain word such as `migrate`) is masked where it stands as a
//   value: in a URL's userinfo, or after password= / PGPASSWORD= / "password": (any quoting). It is
//   left alone in free text, where it cannot be told from the ordinary word, and `run` warns once
//   that such a password should be replaced by a longer random one.

export const MASK = "*****";

/** The limit of the rule, said by `run` (a warning) and `doctor` (a finding) when a password is not distinctive. */
export const WEAK_PASSWORD =
  "the database password is short or a plain word (under 8 characters, or only letters and under 16): it is masked in URLs and password= settings, but not in free text, where it cannot be told from ordinary words.";

/** Whether a password is unlikely enough to occur in ordinary text that it is masked everywhere. */
export function isDistinctive(password: string): boolean {
  const length = [...password].length;
  return length >= 16 || (length >= 8 && !/^\p{L}+$/u.test(password));
}

/** Decodes %XX sequences that are valid UTF-8 and leaves anything else as written (never throws). */
function decodeLenient(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

/**
 * The password of a database URL, decoded, as node-postgres reads it: from the userinfo (also when the
 * host is empty, `postgres://u:p@/db?host=/run/pg`) or from a `password` query parameter.
 */
export function passwordOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const query = /[?&]password=([^&#]*)/.exec(url)?.[1];
  if (query !== undefined && query !== "") return decodeLenient(query.replace(/\+/g, " "));
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url)?.[1];
  const colon = userinfo?.indexOf(":") ?? -1;
  if (userinfo === undefined || colon < 0) return undefined;
  const password = decodeLenient(userinfo.slice(colon + 1));
  return password === "" ? undefined : password;
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");

/** A hex digit in either case, as a regex. */
const hexDigit = (digit: string) =>
  /[a-f]/i.test(digit) ? `[${digit.toLowerCase()}${digit.toUpperCase()}]` : digit;
const hex = (value: number, width: number) =>
  [...value.toString(16).padStart(width, "0")].map(hexDigit).join("");

const JSON_SHORT: Record<string, string> = { "\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f" };
const HTML: Record<string, string[]> = {
  "&": ["&amp;"],
  "<": ["&lt;"],
  ">": ["&gt;"],
  '"': ["&quot;"],
  "'": ["&#39;", "&#x27;", "&apos;"],
};

/** Every way one character of a password can be written in text, as a regex alternation. */
function characterPattern(char: string): string {
  const alternatives = new Set<string>();
  const literal = escapeRegex(char);
  // Shell and JSON escaping (possibly nested: JSON of a JSON-quoted command) put backslashes before
  // punctuation; a backslash itself may be doubled any number of times.
  if (char === "\\") alternatives.add("\\\\+");
  else if (/^[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]$/.test(char)) alternatives.add(`\\\\*${literal}`);
  else alternatives.add(literal);
  if (char === "'") {
    alternatives.add("'\\\\''"); // 'it'\''s' in sh
    alternatives.add(`'"'"'`);
  }
  if (char === " ") alternatives.add("\\+"); // form encoding of a ?password= query parameter
  const short = JSON_SHORT[char];
  if (short !== undefined) alternatives.add(`\\\\+${short}`);
  for (const entity of HTML[char] ?? []) alternatives.add(escapeRegex(entity));
  // JSON \u escapes, one per UTF-16 code unit.
  const units = [...Array(char.length).keys()].map((i) => `\\\\+u${hex(char.charCodeAt(i), 4)}`);
  alternatives.add(units.join(""));
  // Percent-encoding of its UTF-8 bytes, either hex case.
  alternatives.add([...Buffer.from(char, "utf8")].map((byte) => `%${hex(byte, 2)}`).join(""));
  return `(?:${[...alternatives].join("|")})`;
}

/** A regex source that matches the password in any of its spellings. */
export function spellingPattern(password: string): string {
  return [...password].map(characterPattern).join("");
}

/** Where a plain password is masked: as the value of a password setting, however quoted. */
const caseless = (word: string) => [...word].map((c) => `[${c}${c.toUpperCase()}]`).join("");
const PASSWORD_KEY = `(?:${caseless("pg")})?${caseless("pass")}(?:${caseless("word")}|${caseless("wd")})?|${caseless("pwd")}`;
const KEY_SEPARATOR = `\\\\*["']?\\s*[:=]\\s*\\\\*["']?`;

/** `scheme://user:password@host`: userinfo may hold an unencoded @, so the last @ before the host ends it. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#"'<>\\]*)@/gi;

/** What documentation writes in a URL's password place: `password`, `<password>`, `$PGPASSWORD`, `*****`. */
const PLACEHOLDER = /^(?:password|pass|pwd|\*+|<[^>]*>|\$\{?[A-Za-z_]\w*\}?)$/i;

/**
 * Masks the password of every URL in a text, known or not; a placeholder (as in our own advice,
 * postgres://user:password@host) is left as written unless it is a known secret.
 */
export function maskUrlPasswords(text: string, known: ReadonlySet<string> = new Set()): string {
  return text.replace(URL_USERINFO, (whole, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    if (colon < 0 || colon === userinfo.length - 1) return whole;
    const password = userinfo.slice(colon + 1);
    if (PLACEHOLDER.test(password) && !known.has(password)) return whole;
    return `${scheme}${userinfo.slice(0, colon)}:${MASK}@`;
  });
}

export interface Scrubber {
  /** Adds a secret to mask from now on; undefined and empty are ignored. */
  add(secret: string | undefined): void;
  /** The text with every URL password and every spelling of every known secret masked. */
  scrub(text: string): string;
}

export function createScrubber(): Scrubber {
  const secrets = new Set<string>();
  let pattern: RegExp | undefined;
  const rebuild = () => {
    // Longer secrets first, so that one containing another is masked whole.
    const sources = [...secrets]
      .sort((a, b) => b.length - a.length)
      .map((secret) =>
        isDistinctive(secret)
          ? spellingPattern(secret)
          : `(?<=(?:${PASSWORD_KEY})${KEY_SEPARATOR})${spellingPattern(secret)}(?![\\w\\u00c0-\\uffff])`,
      );
    pattern = sources.length === 0 ? undefined : new RegExp(sources.join("|"), "g");
  };
  return {
    add(secret) {
      if (secret === undefined || secret === "" || secrets.has(secret)) return;
      secrets.add(secret);
      rebuild();
    },
    scrub(text) {
      const masked = maskUrlPasswords(text, secrets);
      return pattern === undefined ? masked : masked.replace(pattern, MASK);
    },
  };
}
