// The release-tasks file: the four-task example parses to its tasks, and every bad input gives
// one sentence naming the file and the line, all of them at once.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseTasksFile, type ReleaseTask } from "../../src/core/tasks-file.js";
import { ROOT } from "../support/cli.js";

const FILE = "release-tasks.yml";

/** The example of the issue (and of docs/reference.md), line for line. */
const EXAMPLE = `tasks:
  - name: migrate
    run: bundle exec rake db:migrate
    scope: release        # the default: once per release across every app on this database
  - name: assets
    run: bundle exec rake assets:sync
    scope: app            # once per release for each app (replicas of one app share it)
  - name: smoke
    run: ./bin/smoke-check
    scope: every          # every process, every time
  - name: contract
    run: bundle exec rake db:migrate:post
    scope: release
    after: [s-app, s-admin]   # post-deploy: see item 3
`;

function tasksOf(text: string): ReleaseTask[] {
  const result = parseTasksFile(text, FILE);
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.tasks;
}

function errorsOf(text: string, fileName = FILE): string[] {
  const result = parseTasksFile(text, fileName);
  if (result.ok) throw new Error(`accepted: ${JSON.stringify(result.tasks)}`);
  return result.errors;
}

/** A file of one task with these lines (indented under `- `), so each case names its own line. */
const oneTask = (...lines: string[]) => `tasks:\n  - ${lines.join("\n    ")}\n`;

describe("parseTasksFile, good files", () => {
  it("parses the issue's four-task example to its tasks, in order, with their lines", () => {
    expect(tasksOf(EXAMPLE)).toEqual([
      {
        name: "migrate",
        run: { shell: "bundle exec rake db:migrate" },
        scope: "release",
        after: [],
        line: 2,
      },
      { name: "assets", run: { shell: "bundle exec rake assets:sync" }, scope: "app", after: [], line: 5 },
      { name: "smoke", run: { shell: "./bin/smoke-check" }, scope: "every", after: [], line: 8 },
      {
        name: "contract",
        run: { shell: "bundle exec rake db:migrate:post" },
        scope: "release",
        after: ["s-app", "s-admin"],
        line: 11,
      },
    ]);
  });

  it("docs/reference.md shows the same file, and the same problems for the same mistakes", () => {
    const reference = readFileSync(join(ROOT, "docs/reference.md"), "utf8");
    const section = reference.slice(reference.indexOf("## Release tasks file"));
    const shown = /^```yaml\n([\s\S]*?)^```/m.exec(section)?.[1] ?? "";
    const withoutComments = (text: string) => text.replace(/ *#.*$/gm, "");
    expect(withoutComments(shown)).toBe(withoutComments(EXAMPLE));
    expect(tasksOf(shown)).toEqual(tasksOf(EXAMPLE));
    const shownErrors = (/^```text\n([\s\S]*?)^```/m.exec(section)?.[1] ?? "").trim().split("\n");
    const broken = shown.replace("scope: app ", "scpoe: app ").replace("name: contract", "name: migrate");
    expect(errorsOf(broken)).toEqual(shownErrors);
  });

  it("reads a list as an argv, defaults the scope to release, and reads a timeout and roles", () => {
    const text = oneTask(
      "name: db:migrate",
      'run: [bundle, exec, rake, "db:migrate", "5"]',
      "timeout: 10m",
      "roles: [auto, leader]",
    );
    expect(tasksOf(text)).toEqual([
      {
        name: "db:migrate",
        run: { argv: ["bundle", "exec", "rake", "db:migrate", "5"] },
        scope: "release",
        after: [],
        timeoutMs: 600_000,
        roles: ["auto", "leader"],
        line: 2,
      },
    ]);
  });

  it.each([
    ["90s", 90_000],
    ["1h30m", 5_400_000],
    ["500ms", 500],
    ["600", 600_000],
    ["1.5", 1500],
  ])("reads timeout: %s as %d ms (as every duration option does; a bare number is seconds)", (text, ms) => {
    expect(tasksOf(oneTask("name: a", "run: x", `timeout: ${text}`))[0]?.timeoutMs).toBe(ms);
  });

  it("reads flow style, block lists, a multi-line shell string and YAML aliases", () => {
    const text = [
      "tasks:",
      "  - { name: a, run: &cmd [./bin/check, --all] }",
      "  - name: b",
      "    run: *cmd",
      "    scope: app",
      "    roles:",
      "      - follower",
      "  - name: c",
      "    run: |",
      "      set -e",
      "      ./one && ./two",
      "",
    ].join("\n");
    expect(tasksOf(text).map(({ name, run, roles }) => ({ name, run, roles }))).toEqual([
      { name: "a", run: { argv: ["./bin/check", "--all"] }, roles: undefined },
      { name: "b", run: { argv: ["./bin/check", "--all"] }, roles: ["follower"] },
      { name: "c", run: { shell: "set -e\n./one && ./two\n" }, roles: undefined },
    ]);
  });

  it("a follower may run its own app and every tasks", () => {
    expect(tasksOf(oneTask("name: a", "run: x", "scope: every", "roles: [follower]"))[0]?.roles).toEqual([
      "follower",
    ]);
  });
});

describe("parseTasksFile, each bad input gives its one sentence with its line", () => {
  it.each<[string, string, string]>([
    [
      "a YAML syntax error",
      "tasks:\n  - name: a\n    run: [x\n",
      "4: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
    [
      "a duplicate YAML key",
      "tasks:\n  - name: a\n    run: x\n    run: y\n",
      "4: YAML syntax error: Map keys must be unique",
    ],
    [
      "two YAML documents",
      "tasks: []\n---\ntasks: []\n",
      "2: the file holds more than one YAML document (---); keep one",
    ],
    ["an empty file", "# nothing yet\n", "1: the file is empty; it must be a mapping with a tasks: list"],
    [
      "a list at the top",
      "- name: a\n  run: x\n",
      "1: the file is a list; it must be a mapping with a tasks: list",
    ],
    ["tasks not a list", "tasks: migrate\n", "1: tasks must be a list of at least one task, not a string"],
    ["an empty tasks list", "tasks: []\n", "1: tasks must be a list of at least one task, not an empty list"],
    [
      "a task that is a string",
      "tasks:\n  - migrate\n",
      "2: task #1 must be a mapping with a name and a run, not a string",
    ],
    [
      "an unknown task key",
      oneTask("name: assets", "run: x", "scpoe: app"),
      "4: task 'assets': unknown key 'scpoe' (known: name, run, scope, after, timeout, roles)",
    ],
    [
      "an unknown scope",
      oneTask("name: a", "run: x", "scope: apps"),
      "4: task 'a': unknown scope 'apps' (known: release, app, every)",
    ],
    [
      "a scope that is not a string",
      oneTask("name: a", "run: x", "scope: [app]"),
      "4: task 'a': unknown scope a list (known: release, app, every)",
    ],
    ["no name", oneTask("run: x"), "2: task #1 has no name; give it one, like name: migrate"],
    [
      "a name that is a number",
      oneTask("name: 2024", "run: x"),
      "2: task #1: its name must be a string, not a number",
    ],
    [
      "a name that --task refuses",
      oneTask('name: "db migrate"', "run: x"),
      "2: task #1: name 'db migrate' is not valid; a task name must be 1 to 100 letters, digits or . _ : / @ + -",
    ],
    [
      "no run",
      oneTask("name: a", "scope: app"),
      "2: task 'a': no run; give it a command as a list (an argv, run without a shell) or a string (run by sh -c)",
    ],
    [
      "an empty run",
      oneTask("name: a", "run:"),
      "3: task 'a': run must be a list (an argv, run without a shell) or a string (run by sh -c), not nothing",
    ],
    [
      "a blank run string",
      oneTask("name: a", 'run: "  "'),
      "3: task 'a': run must be a list (an argv, run without a shell) or a string (run by sh -c), not an empty string",
    ],
    [
      "a run that is a mapping",
      oneTask("name: a", "run: { cmd: x }"),
      "3: task 'a': run must be a list (an argv, run without a shell) or a string (run by sh -c), not a mapping",
    ],
    [
      "an empty run list",
      oneTask("name: a", "run: []"),
      "3: task 'a': run is an empty list; give it a command as a list (an argv, run without a shell) or a string (run by sh -c)",
    ],
    [
      "a number in the argv",
      oneTask("name: a", "run:", "  - sleep", "  - 5"),
      "5: task 'a': run item 2 must be a non-empty string, not a number (quote it, like \"5\")",
    ],
    [
      "an empty string in the argv",
      oneTask("name: a", 'run: [echo, ""]'),
      "3: task 'a': run item 2 must be a non-empty string, not an empty string",
    ],
    [
      "a timeout that is not a duration",
      oneTask("name: a", "run: x", "timeout: ten"),
      "4: task 'a': timeout \"ten\" is not a duration; write it like 90s, 45m, 1h30m or 500ms",
    ],
    [
      "a timeout with a space",
      oneTask("name: a", "run: x", "timeout: 1h 30m"),
      "4: task 'a': timeout \"1h 30m\" is not a duration; write it like 90s, 45m, 1h30m or 500ms",
    ],
    [
      "a negative timeout",
      oneTask("name: a", "run: x", "timeout: -5m"),
      "4: task 'a': timeout \"-5m\" is negative; give a duration above zero, like 10m",
    ],
    [
      "a zero timeout",
      oneTask("name: a", "run: x", "timeout: 0s"),
      "4: task 'a': timeout \"0s\" is zero; give a duration above zero, like 10m",
    ],
    [
      "a timeout that is a list",
      oneTask("name: a", "run: x", "timeout: [10m]"),
      "4: task 'a': timeout must be a duration like 10m, 90s or 1h30m, not a list",
    ],
    [
      "roles that are a string",
      oneTask("name: a", "run: x", "roles: leader"),
      "4: task 'a': roles must be a list of at least one of auto, leader, follower, like [leader], not a string",
    ],
    [
      "an empty roles list",
      oneTask("name: a", "run: x", "roles: []"),
      "4: task 'a': roles must be a list of at least one of auto, leader, follower, like [leader], not an empty list",
    ],
    [
      "an unknown role",
      oneTask("name: a", "run: x", "roles:", "  - leader", "  - primary"),
      "6: task 'a': unknown role 'primary' (known: auto, leader, follower)",
    ],
    [
      "a role given twice",
      oneTask("name: a", "run: x", "roles: [leader, leader]"),
      "4: task 'a': roles lists 'leader' twice",
    ],
    [
      "a release task only followers run",
      oneTask("name: a", "run: x", "roles: [follower]"),
      "4: task 'a': roles [follower] leave this release-scope task to no process (a follower never runs one); add auto or leader, or give it scope app or every",
    ],
    [
      "after on an app task",
      oneTask("name: a", "run: x", "scope: app", "after: [s-app]"),
      "5: task 'a': after is only for a release-scope task (a post-deploy step), and this one's scope is app",
    ],
    [
      "after on an every task",
      oneTask("name: a", "run: x", "scope: every", "after: [s-app]"),
      "5: task 'a': after is only for a release-scope task (a post-deploy step), and this one's scope is every",
    ],
    [
      "an after that names no app",
      oneTask("name: a", "run: x", "after: []"),
      "4: task 'a': after must be a list of at least one app name, like [s-app, s-admin], not an empty list",
    ],
    [
      "an after that is a string",
      oneTask("name: a", "run: x", "after: s-app"),
      "4: task 'a': after must be a list of at least one app name, like [s-app, s-admin], not a string",
    ],
    [
      "an after with an empty name",
      oneTask("name: a", "run: x", "after:", "  - s-app", '  - " "'),
      "6: task 'a': after item 2 must be a non-empty string",
    ],
    [
      "an after naming an app twice",
      oneTask("name: a", "run: x", "after: [s-app, s-app]"),
      "4: task 'a': after lists 's-app' twice",
    ],
  ])("%s", (_what, text, expected) => {
    expect(errorsOf(text)).toEqual([`${FILE}:${expected}`]);
  });

  it("a file without tasks: says so, besides its unknown keys", () => {
    expect(errorsOf("steps:\n  - name: a\n")).toEqual([
      `${FILE}:1: unknown key 'steps' (known: tasks)`,
      `${FILE}:1: there is no tasks: list; write tasks: with at least one task`,
    ]);
  });

  it("a duplicate name names the line of the first task", () => {
    const text =
      "tasks:\n  - name: migrate\n    run: a\n  - name: smoke\n    run: b\n  - name: migrate\n    run: c\n";
    expect(errorsOf(text)).toEqual([
      `${FILE}:6: task 'migrate': the name is already used by the task on line 2`,
    ]);
  });

  it("names the file as it is given", () => {
    expect(errorsOf("tasks: []\n", "deploy/tasks.yml")).toEqual([
      "deploy/tasks.yml:1: tasks must be a list of at least one task, not an empty list",
    ]);
  });
});

describe("parseTasksFile, several problems at once", () => {
  it("reports every problem of every task, in line order, each once", () => {
    const text = [
      "version: 2", // 1
      "tasks:", // 2
      "  - name: migrate", // 3
      "    run: [rake, 5]", // 4
      "    scpoe: app", // 5
      "  - name: migrate", // 6
      "    scope: apps", // 7
      "    timeout: ten", // 8
      "  - name: bad name", // 9
      "    run: x", // 10
      "    scope: app", // 11
      "    after: [s-app]", // 12
      "  - 5", // 13
      "  - name: ok", // 14
      "    run: ./bin/ok", // 15
      "",
    ].join("\n");
    expect(errorsOf(text)).toEqual(
      [
        "1: unknown key 'version' (known: tasks)",
        "4: task 'migrate': run item 2 must be a non-empty string, not a number (quote it, like \"5\")",
        "5: task 'migrate': unknown key 'scpoe' (known: name, run, scope, after, timeout, roles)",
        "6: task 'migrate': no run; give it a command as a list (an argv, run without a shell) or a string (run by sh -c)",
        "6: task 'migrate': the name is already used by the task on line 3",
        "7: task 'migrate': unknown scope 'apps' (known: release, app, every)",
        "8: task 'migrate': timeout \"ten\" is not a duration; write it like 90s, 45m, 1h30m or 500ms",
        "9: task #3: name 'bad name' is not valid; a task name must be 1 to 100 letters, digits or . _ : / @ + -",
        "12: task #3: after is only for a release-scope task (a post-deploy step), and this one's scope is app",
        "13: task #4 must be a mapping with a name and a run, not a number",
      ].map((line) => `${FILE}:${line}`),
    );
  });

  it("gives one sentence per problem: no line break, one final clause", () => {
    const text = oneTask(
      "name: a",
      "run: []",
      "scope: x",
      "timeout: y",
      "roles: [z]",
      "after: 1",
      "other: 2",
    );
    const errors = errorsOf(text);
    expect(errors).toHaveLength(6);
    for (const error of errors) {
      expect(error).toMatch(/^release-tasks\.yml:\d+: /);
      expect(error).not.toMatch(/\n/);
      expect(error).not.toMatch(/\.$/);
    }
  });
});

describe("scripts/release-tasks.sh", () => {
  it("shows its steps as a tasks file that parses: migrate once, one step per app, one in every process", () => {
    const script = readFileSync(join(ROOT, "scripts/release-tasks.sh"), "utf8");
    const block = /# tasks-file:start\n([\s\S]*?)# tasks-file:end/.exec(script)?.[1] ?? "";
    const yaml = block.replace(/^# {0,3}/gm, "");
    const parsed = parseTasksFile(yaml, "release-tasks.yml");
    expect(parsed.ok, JSON.stringify(parsed)).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.tasks.map((t) => [t.name, t.scope])).toEqual([
      ["migrate", "release"],
      ["warm-cache", "app"],
      ["smoke", "every"],
    ]);
  });
});
