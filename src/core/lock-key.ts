// The advisory lock key: two int4 values derived from the lock name.
// pg_try_advisory_lock(int, int) lives in a key space of its own (pg_locks.objsubid = 2), so it can
// never collide with the single-bigint keys of the tools we wrap (Rails, Prisma 72707369, node-pg-migrate...).

import { createHash } from "node:crypto";

/** First key of every release-orchestrator lock: "RELE" in ASCII, so our locks are easy to spot in pg_locks. */
export const LOCK_NAMESPACE = 0x52454c45;

export interface LockKey {
  /** pg_locks.classid */
  readonly namespace: number;
  /** pg_locks.objid */
  readonly key: number;
}

/** Derives the lock key from a lock name; stable across versions and both parts within [0, 2^31). */
export function deriveLockKey(lockName: string): LockKey {
  const digest = createHash("sha256").update(`release-orchestrator:${lockName}`).digest();
  return { namespace: LOCK_NAMESPACE, key: digest.readUInt32BE(0) & 0x7fffffff };
}
