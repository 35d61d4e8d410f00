import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../src/core/duration.js";

describe("parseDuration", () => {
  it.each([
    ["90s", 90_000],
    ["45m", 2_700_000],
    ["1h30m", 5_400_000],
    ["500ms", 500],
    ["1.5s", 1500],
    ["600", 600_000],
    [" 2m ", 120_000],
    ["1d", 86_400_000],
    ["0s", 0],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "-5s", "5x", "s", "1h 30m", "ten", "1e3", "5s5"])("%j is rejected", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe("formatDuration", () => {
  it.each([
    [850, "850 ms"],
    [34_000, "34 s"],
    [725_000, "12 m 5 s"],
    [3_720_000, "1 h 2 m"],
    [3_600_000, "1 h"],
  ])("%d ms reads %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
