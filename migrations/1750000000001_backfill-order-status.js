// Data backfill that takes a moment, like a real one: adds a status to every order and records one
// event per order. Run twice, it would record every event twice; that is what the orchestrator's
// tests count.

/** @param pgm {import('node-pg-migrate').MigrationBuilder} */
export const up = (pgm) => {
  pgm.addColumn("orders", { status: { type: "text" } });
  pgm.sql("SELECT pg_sleep(2)");
  pgm.sql("UPDATE orders SET status = 'paid' WHERE status IS NULL");
  pgm.sql("INSERT INTO order_events (order_id, kind) SELECT id, 'status-backfilled' FROM orders ORDER BY id");
  pgm.alterColumn("orders", "status", { notNull: true, default: "pending" });
};

/** @param pgm {import('node-pg-migrate').MigrationBuilder} */
export const down = (pgm) => {
  pgm.sql("DELETE FROM order_events WHERE kind = 'status-backfilled'");
  pgm.dropColumn("orders", "status");
};
