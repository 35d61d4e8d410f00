// What the leader says about its command being blocked on a lock: when it starts, by whom, again every
// 30 s while it lasts, and when it ends. The observation comes from each lease renewal (see blockedSql).

import { describeBlock, sameBlock, type Blocked } from "../core/blocking.js";
import { fields, type RunContext } from "./context.js";

/** How often a block that lasts is said again (with its new duration). */
const BLOCK_REMINDER_MS = 30_000;

/** Says when the command becomes blocked on a lock, by whom, again every 30 s while it lasts, and when it ends. */
export class BlockReport {
  private current: Blocked | null = null;
  private saidAt = 0;

  constructor(
    private readonly ctx: RunContext,
    private readonly attemptId: number,
  ) {}

  seen(blocked: Blocked | null): void {
    const { reporter } = this.ctx;
    const changed = !sameBlock(this.current, blocked);
    if (blocked !== null && (changed || Date.now() - this.saidAt >= BLOCK_REMINDER_MS)) {
      reporter.warn(
        `blocked: ${describeBlock(blocked)}`,
        fields(this.ctx, "blocked", this.attemptId, { blocked }),
      );
      this.saidAt = Date.now();
    } else if (blocked === null && this.current !== null) {
      reporter.info(
        `no longer blocked: backend pid ${this.current.pid} got its lock or stopped waiting.`,
        fields(this.ctx, "unblocked", this.attemptId),
      );
    }
    this.current = blocked;
  }
}
