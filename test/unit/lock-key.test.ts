import { describe, expect, it } from "vitest";
import { deriveLockKey, LOCK_NAMESPACE } from "../../src/core/lock-key.js";

const INT4_MAX = 2 ** 31 - 1;

describe("deriveLockKey", () => {
  it("is stable across versions: the default lock name always maps to the same key", () => {
    // Changing this breaks mixed-version deploys: old and new processes would take different locks.
    expect(deriveLockKey("release-orchestrator")).toEqual({ namespace: 0x52454c45, key: 2073494933 });
  });

  it("stays inside int4 for many names and spreads them", () => {
    const keys = new Set<number>();
    for (let i = 0; i < 5000; i++) {
      const { namespace, key } = deriveLockKey(`lock-${i}`);
      expect(namespace).toBe(LOCK_NAMESPACE);
      expect(Number.isInteger(key)).toBe(true);
      expect(key).toBeGreaterThanOrEqual(0);
      expect(key).toBeLessThanOrEqual(INT4_MAX);
      keys.add(key);
    }
    expect(keys.size).toBe(5000);
  });

  it("gives different names different keys", () => {
    expect(deriveLockKey("a").key).not.toBe(deriveLockKey("b").key);
  });
});
