// The JSON Schema editors read (schema/release-tasks.schema.json) and the parser agree: the same keys,
// scopes, roles and name rule, and the same verdict on good and bad files (ajv, draft 2020-12).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { NAME } from "../../src/core/option-values.js";
import { ROLES } from "../../src/core/options.js";
import { TASK_KEYS, TASK_SCOPES, TASKS_FILE_KEYS, parseTasksFile } from "../../src/core/tasks-file.js";
import { ROOT } from "../support/cli.js";

interface TaskSchema {
  required: string[];
  properties: Record<string, { pattern?: string; enum?: string[]; items?: { enum?: string[] } }>;
}

const schema = JSON.parse(readFileSync(join(ROOT, "schema/release-tasks.schema.json"), "utf8")) as {
  $schema: string;
  required: string[];
  properties: Record<string, unknown>;
  $defs: { task: TaskSchema };
};
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);
const task = schema.$defs.task;

const oneTask = (...lines: string[]) => `tasks:\n  - ${lines.join("\n    ")}\n`;

const GOOD = [
  oneTask("name: migrate", "run: bundle exec rake db:migrate"),
  oneTask("name: db:migrate", "run: [bundle, exec, rake, db:migrate]", "scope: release", "timeout: 10m"),
  oneTask("name: assets", "run: ./bin/assets", "scope: app", "roles: [auto, follower]", "timeout: 90"),
  oneTask("name: smoke", "run: ./bin/smoke", "scope: every", "roles: [follower]", "timeout: 1h30m"),
  oneTask("name: contract", "run: ./bin/contract", "after: [s-app, s-admin]", "roles: [leader]"),
  oneTask("name: a.b_c/d@e+f-g", "run: [x, ' ']", "timeout: 500ms"),
];

const BAD = [
  "tasks: []\n",
  "tasks: migrate\n",
  "- name: a\n  run: x\n",
  "version: 2\ntasks:\n  - name: a\n    run: x\n",
  "tasks:\n  - migrate\n",
  oneTask("run: x"),
  oneTask("name: a"),
  oneTask("name: 2024", "run: x"),
  oneTask("name: db migrate", "run: x"),
  oneTask("name: a", "run: x", "scpoe: app"),
  oneTask("name: a", "run: x", "scope: apps"),
  oneTask("name: a", "run: x", "scope: App"),
  oneTask("name: a", "run: ''"),
  oneTask("name: a", "run: '  '"),
  oneTask("name: a", "run: []"),
  oneTask("name: a", "run: [sleep, 5]"),
  oneTask("name: a", "run: [echo, '']"),
  oneTask("name: a", "run: { cmd: x }"),
  oneTask("name: a", "run: x", "timeout: ten"),
  oneTask("name: a", "run: x", "timeout: 1h 30m"),
  oneTask("name: a", "run: x", "timeout: -5m"),
  oneTask("name: a", "run: x", "timeout: 0s"),
  oneTask("name: a", "run: x", "timeout: 0"),
  oneTask("name: a", "run: x", "timeout: -3"),
  oneTask("name: a", "run: x", "roles: leader"),
  oneTask("name: a", "run: x", "roles: []"),
  oneTask("name: a", "run: x", "roles: [primary]"),
  oneTask("name: a", "run: x", "roles: [leader, leader]"),
  oneTask("name: a", "run: x", "roles: [follower]"),
  oneTask("name: a", "run: x", "scope: release", "roles: [follower]"),
  oneTask("name: a", "run: x", "scope: app", "after: [s-app]"),
  oneTask("name: a", "run: x", "scope: every", "after: [s-app]"),
  oneTask("name: a", "run: x", "after: []"),
  oneTask("name: a", "run: x", "after: s-app"),
  oneTask("name: a", "run: x", "after: [s-app, s-app]"),
  oneTask("name: a", "run: x", "after: [' ']"),
];

describe("schema/release-tasks.schema.json", () => {
  it("is a draft 2020-12 schema with the parser's keys, scopes, roles and name rule", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(Object.keys(schema.properties)).toEqual([...TASKS_FILE_KEYS]);
    expect(schema.required).toEqual(["tasks"]);
    expect(Object.keys(task.properties)).toEqual([...TASK_KEYS]);
    expect(task.required).toEqual(["name", "run"]);
    expect(task.properties.scope?.enum).toEqual([...TASK_SCOPES]);
    expect(task.properties.roles?.items?.enum).toEqual([...ROLES]);
    expect(task.properties.name?.pattern).toBe(NAME.source);
  });

  it.each(GOOD)("accepts what the parser accepts: %s", (text) => {
    expect(parseTasksFile(text, "t.yml")).toMatchObject({ ok: true });
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each(BAD)("refuses what the parser refuses: %s", (text) => {
    expect(parseTasksFile(text, "t.yml")).toMatchObject({ ok: false });
    expect(validate(parse(text))).toBe(false);
  });

  it("leaves to the parser what a schema cannot say: task names are unique", () => {
    const text = "tasks:\n  - name: a\n    run: x\n  - name: a\n    run: y\n";
    expect(validate(parse(text))).toBe(true);
    expect(parseTasksFile(text, "t.yml")).toEqual({
      ok: false,
      errors: ["t.yml:4: task 'a': the name is already used by the task on line 2"],
    });
  });
});
