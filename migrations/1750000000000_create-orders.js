// Schema change: the table both apps read (s-app writes orders, s-admin reviews them), with a few
// sample rows so the next migration has something to backfill.

/** @param pgm {import('node-pg-migrate').MigrationBuilder} */
export const up = (pgm) => {
  pgm.createTable("orders", {
    id: "id",
    customer_email: { type: "text", notNull: true },
    total_cents: { type: "integer", notNull: true },
    created_at: { type: "timestamptz", notNull: true, default: pgm.func("now()") },
  });
  pgm.createTable("order_events", {
    id: "id",
    order_id: { type: "integer", notNull: true, references: "orders", onDelete: "CASCADE" },
    kind: { type: "text", notNull: true },
    recorded_at: { type: "timestamptz", notNull: true, default: pgm.func("clock_timestamp()") },
  });
  pgm.sql(`INSERT INTO orders (customer_email, total_cents)
           SELECT 'customer' || n || '@example.com', n * 1250 FROM generate_series(1, 5) AS n`);
};

/** @param pgm {import('node-pg-migrate').MigrationBuilder} */
export const down = (pgm) => {
  pgm.dropTable("order_events");
  pgm.dropTable("orders");
};
