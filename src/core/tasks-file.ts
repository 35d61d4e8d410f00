// The release-tasks file (release-tasks.yml): the ordered tasks of a release, parsed and validated all
// at once, every problem named by file and line. Pure: no IO, and nothing here runs a task.

import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import { cleanFreeText, duration } from "./option-values.js";
import { OPTIONS, ROLES, type Role } from "./options.js";

export const DEFAULT_TASKS_FILE = "release-tasks.yml";
/** Where a task runs: once per release across every app, once per release for each app, in every process. */
export const TASK_SCOPES = ["release", "app", "every"] as const;
export type TaskScope = (typeof TASK_SCOPES)[number];
export const TASKS_FILE_KEYS = ["tasks"] as const;
export const TASK_KEYS = ["name", "run", "scope", "after", "timeout", "roles"] as const;

/** A command: a list is an argv (no shell), a string goes through `sh -c`. */
export type TaskRun = { argv: string[] } | { shell: string };

export interface ReleaseTask {
  name: string;
  run: TaskRun;
  /** `release` when the file does not say. */
  scope: TaskScope;
  /** The apps a post-deploy `release` task waits for; empty for any other task. */
  after: string[];
  timeoutMs?: number;
  /** The roles whose processes run it; every role when the file does not say. */
  roles?: Role[];
  /** The line of the task's first key. */
  line: number;
}

export type TasksFileResult = { ok: true; tasks: ReleaseTask[] } | { ok: false; errors: string[] };

/** A key's value and the line of its key. */
interface Field {
  value: Node | undefined;
  line: number;
}

/** What the readers of one file share: where a node is, and the problems found so far. */
interface Context {
  lineOf(node: Node | null | undefined, fallback: number): number;
  resolve(node: unknown): Node | undefined;
  problem(line: number, message: string): void;
  count(): number;
}

/** The `--task` option's own rule for a task name, so the file and the flag accept the same names. */
const taskNameSchema = OPTIONS.find((spec) => spec.key === "task")!.schema;
const timeoutSchema = duration("timeout");

/** Parses and checks a release-tasks file; `fileName` is how each problem names it: `release-tasks.yml:7: ...`. */
export function parseTasksFile(text: string, fileName: string): TasksFileResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const problems: { line: number; message: string }[] = [];
  const ctx = fileContext(doc, lineCounter, problems);
  for (const error of doc.errors) ctx.problem(error.linePos?.[0].line ?? 1, syntaxMessage(error));
  const tasks = problems.length === 0 ? readTasks(ctx.resolve(doc.contents), ctx) : [];
  if (problems.length === 0) return { ok: true, tasks };
  const sorted = [...problems].sort((a, b) => a.line - b.line);
  return { ok: false, errors: sorted.map(({ line, message }) => `${fileName}:${line}: ${message}`) };
}

function fileContext(doc: Document, lineCounter: LineCounter, problems: { line: number; message: string }[]) {
  const ctx: Context = {
    lineOf: (node, fallback) => {
      const offset = node?.range?.[0];
      return offset === undefined ? fallback : lineCounter.linePos(offset).line;
    },
    resolve: (node) => {
      let found = node as Node | null | undefined;
      for (let depth = 0; isAlias(found) && depth < 100; depth++) found = found.resolve(doc);
      return found ?? undefined;
    },
    problem: (line, message) => problems.push({ line, message }),
    count: () => problems.length,
  };
  return ctx;
}

/** A YAML syntax error in one sentence: the parser's words without its excerpt of the source. */
function syntaxMessage(error: { code: string; message: string }): string {
  if (error.code === "MULTIPLE_DOCS") return "the file holds more than one YAML document (---); keep one";
  const first = error.message.split("\n")[0] ?? error.message;
  return `YAML syntax error: ${first.replace(/ at line \d+, column \d+:?$/, "")}`;
}

/** What a node is, for a sentence: "a list", "a string", "a number", "nothing". */
function describe(node: Node | null | undefined): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  const value: unknown = isScalar(node) ? node.value : null;
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "boolean") return `${String(value)} (a boolean)`;
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}

/** A mapping's keys (unique: the YAML parser refuses a repeated key) with their values and lines. */
function fieldsOf(node: Node, ctx: Context, fallback: number): Map<string, Field> {
  const fields = new Map<string, Field>();
  if (!isMap(node)) return fields;
  for (const pair of node.items) {
    const key: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
    const line = ctx.lineOf(pair.key as Node | null, fallback);
    fields.set(String(key), { value: ctx.resolve(pair.value), line });
  }
  return fields;
}

function unknownKeys(
  fields: Map<string, Field>,
  known: readonly string[],
  prefix: string,
  ctx: Context,
): void {
  for (const [key, { line }] of fields)
    if (!known.includes(key)) ctx.problem(line, `${prefix}unknown key '${key}' (known: ${known.join(", ")})`);
}

function readTasks(top: Node | undefined, ctx: Context): ReleaseTask[] {
  if (!isMap(top)) {
    const what = describe(top);
    const message = what === "nothing" ? "the file is empty" : `the file is ${what}`;
    ctx.problem(ctx.lineOf(top, 1), `${message}; it must be a mapping with a tasks: list`);
    return [];
  }
  const fields = fieldsOf(top, ctx, 1);
  unknownKeys(fields, TASKS_FILE_KEYS, "", ctx);
  const list = fields.get("tasks");
  if (list === undefined) {
    ctx.problem(ctx.lineOf(top, 1), "there is no tasks: list; write tasks: with at least one task");
    return [];
  }
  if (!isSeq(list.value) || list.value.items.length === 0) {
    const what = isSeq(list.value) ? "an empty list" : describe(list.value);
    ctx.problem(list.line, `tasks must be a list of at least one task, not ${what}`);
    return [];
  }
  const tasks: ReleaseTask[] = [];
  const seen = new Map<string, number>();
  let line = list.line;
  list.value.items.forEach((item, index) => {
    const node = ctx.resolve(item);
    line = ctx.lineOf(item as Node, line);
    const { name, task } = readTask(node, index, line, ctx);
    if (task !== undefined) tasks.push(task);
    if (name === undefined) return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, line);
    else ctx.problem(line, `task '${name}': the name is already used by the task on line ${first}`);
  });
  return tasks;
}

/** One task's name when it has a valid one, and the task when it has no problem (each is reported). */
function readTask(
  node: Node | undefined,
  index: number,
  line: number,
  ctx: Context,
): { name?: string; task?: ReleaseTask } {
  if (!isMap(node) || node.items.length === 0) {
    const what = isMap(node) ? "an empty mapping" : describe(node);
    ctx.problem(line, `task #${index + 1} must be a mapping with a name and a run, not ${what}`);
    return {};
  }
  const fields = fieldsOf(node, ctx, line);
  const before = ctx.count();
  const name = readName(fields, index, line, ctx);
  const label = name === undefined ? `task #${index + 1}` : `task '${name}'`;
  unknownKeys(fields, TASK_KEYS, `${label}: `, ctx);
  const say = (at: number, message: string) => ctx.problem(at, `${label}: ${message}`);
  const run = readRun(fields.get("run"), line, say, ctx);
  const scope = readScope(fields.get("scope"), say);
  const timeoutMs = readTimeout(fields.get("timeout"), say);
  const roles = readRoles(fields.get("roles"), say, ctx);
  const after = readAfter(fields.get("after"), scope, say, ctx);
  checkRolesForScope(fields.get("roles"), roles, scope, say);
  if (ctx.count() !== before || name === undefined || run === undefined || scope === undefined)
    return name === undefined ? {} : { name };
  const task: ReleaseTask = {
    name,
    run,
    scope,
    after: after ?? [],
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(roles === undefined ? {} : { roles }),
    line,
  };
  return { name, task };
}

type Say = (line: number, message: string) => void;

/** A string scalar's text, or undefined. */
function textOf(node: Node | undefined): string | undefined {
  return isScalar(node) && typeof node.value === "string" ? node.value : undefined;
}

function readName(fields: Map<string, Field>, index: number, line: number, ctx: Context): string | undefined {
  const field = fields.get("name");
  const label = `task #${index + 1}`;
  if (field === undefined) {
    ctx.problem(line, `${label} has no name; give it one, like name: migrate`);
    return undefined;
  }
  const text = textOf(field.value);
  if (text === undefined) {
    ctx.problem(field.line, `${label}: its name must be a string, not ${describe(field.value)}`);
    return undefined;
  }
  const parsed = taskNameSchema.safeParse(text);
  if (!parsed.success) {
    ctx.problem(field.line, `${label}: name '${text}' is not valid; a ${parsed.error.issues[0]?.message}`);
    return undefined;
  }
  return text;
}

const RUN_FORMS = "a list (an argv, run without a shell) or a string (run by sh -c)";

function readRun(field: Field | undefined, line: number, say: Say, ctx: Context): TaskRun | undefined {
  if (field === undefined) {
    say(line, `no run; give it a command as ${RUN_FORMS}`);
    return undefined;
  }
  const { value } = field;
  if (isSeq(value)) {
    if (value.items.length === 0) say(field.line, `run is an empty list; give it a command as ${RUN_FORMS}`);
    const argv = value.items.map((item, i) => {
      const node = ctx.resolve(item);
      const text = textOf(node);
      if (text === undefined || text === "") {
        const what = text === "" ? "an empty string" : describe(node);
        const source = isScalar(node) && text === undefined ? node.source : undefined;
        const hint = source ? ` (quote it, like "${source}")` : "";
        say(
          ctx.lineOf(item as Node, field.line),
          `run item ${i + 1} must be a non-empty string, not ${what}${hint}`,
        );
      }
      return text ?? "";
    });
    return { argv };
  }
  const shell = textOf(value);
  if (shell === undefined || shell.trim() === "") {
    const what = shell === undefined ? describe(value) : "an empty string";
    say(field.line, `run must be ${RUN_FORMS}, not ${what}`);
    return undefined;
  }
  return { shell };
}

function readScope(field: Field | undefined, say: Say): TaskScope | undefined {
  if (field === undefined) return "release";
  const text = textOf(field.value);
  if (text !== undefined && (TASK_SCOPES as readonly string[]).includes(text)) return text as TaskScope;
  const what = text === undefined ? describe(field.value) : `'${text}'`;
  say(field.line, `unknown scope ${what} (known: ${TASK_SCOPES.join(", ")})`);
  return undefined;
}

function readTimeout(field: Field | undefined, say: Say): number | undefined {
  if (field === undefined) return undefined;
  const value: unknown = isScalar(field.value) ? field.value.value : undefined;
  const text = typeof value === "number" ? String(value) : typeof value === "string" ? value : undefined;
  if (text === undefined) {
    say(field.line, `timeout must be a duration like 10m, 90s or 1h30m, not ${describe(field.value)}`);
    return undefined;
  }
  const parsed = timeoutSchema.safeParse(text);
  if (text.trim().startsWith("-"))
    say(field.line, `timeout "${text}" is negative; give a duration above zero, like 10m`);
  else if (!parsed.success)
    say(field.line, parsed.error.issues[0]?.message ?? `timeout "${text}" is not valid`);
  else if (parsed.data === 0)
    say(field.line, `timeout "${text}" is zero; give a duration above zero, like 10m`);
  else return parsed.data;
  return undefined;
}

/** The items of a list of strings, each with its line; reports what is not one. */
function stringList(field: Field, what: string, example: string, say: Say, ctx: Context) {
  if (!isSeq(field.value) || field.value.items.length === 0) {
    const got = isSeq(field.value) ? "an empty list" : describe(field.value);
    say(field.line, `${what} must be a list of at least one ${example}, not ${got}`);
    return undefined;
  }
  const items: { text: string; line: number }[] = [];
  const seen = new Set<string>();
  field.value.items.forEach((item, i) => {
    const node = ctx.resolve(item);
    const line = ctx.lineOf(item as Node, field.line);
    const text = textOf(node)?.trim();
    if (text === undefined || text === "") say(line, `${what} item ${i + 1} must be a non-empty string`);
    else if (seen.has(text)) say(line, `${what} lists '${text}' twice`);
    else items.push({ text, line });
    if (text !== undefined) seen.add(text);
  });
  return items;
}

function readRoles(field: Field | undefined, say: Say, ctx: Context): Role[] | undefined {
  if (field === undefined) return undefined;
  const items = stringList(field, "roles", `of ${ROLES.join(", ")}, like [leader]`, say, ctx);
  const roles: Role[] = [];
  for (const { text, line } of items ?? []) {
    if ((ROLES as readonly string[]).includes(text)) roles.push(text as Role);
    else say(line, `unknown role '${text}' (known: ${ROLES.join(", ")})`);
  }
  return items === undefined ? undefined : roles;
}

function readAfter(field: Field | undefined, scope: TaskScope | undefined, say: Say, ctx: Context) {
  if (field === undefined) return undefined;
  if (scope !== undefined && scope !== "release") {
    say(
      field.line,
      `after is only for a release-scope task (a post-deploy step), and this one's scope is ${scope}`,
    );
    return undefined;
  }
  const items = stringList(field, "after", "app name, like [s-app, s-admin]", say, ctx);
  return items?.map(({ text }) => cleanFreeText(text) ?? text);
}

/** A follower never runs a release-scope task: roles that only name followers would leave it to no process. */
function checkRolesForScope(
  field: Field | undefined,
  roles: Role[] | undefined,
  scope: TaskScope | undefined,
  say: Say,
) {
  if (field === undefined || roles === undefined || roles.length === 0 || scope !== "release") return;
  if (roles.every((role) => role === "follower"))
    say(
      field.line,
      "roles [follower] leave this release-scope task to no process (a follower never runs one); add auto or leader, or give it scope app or every",
    );
}
