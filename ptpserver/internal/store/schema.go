package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] takes the schema from version i to i+1 (PRAGMA user_version). A released
// migration is never edited: a change is a new entry, so every database, however old, reaches the
// current layout by running the tail it lacks.
var migrations = []string{
	// 1: the initial layout.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per client (mesh, UUID) that reports.
CREATE TABLE reporters (
	id   INTEGER PRIMARY KEY,
	mesh TEXT NOT NULL,
	uuid TEXT NOT NULL,
	UNIQUE (mesh, uuid)
);

-- One row per (mesh, reporter, peer): summaries refer to it by id.
CREATE TABLE pairs (
	id   INTEGER PRIMARY KEY,
	mesh TEXT NOT NULL,
	src  TEXT NOT NULL,
	dst  TEXT NOT NULL,
	UNIQUE (mesh, src, dst)
);

-- Interned reason texts ("peer's NAT maps per destination ...").
CREATE TABLE reasons (
	id   INTEGER PRIMARY KEY,
	text TEXT NOT NULL UNIQUE
);

-- Every reachability report as received: one row per reporter and flush (and 5-minute
-- bucket), its per-peer entries packed in a blob (entry.go): one statement per client report
-- instead of one per peer is what keeps ingest cheap. Appended in id order; ts (unix ms, the
-- first entry's) never decreases with id, which lets retention and replay cut by id range.
-- Entries carry the increments since the pair's previous report (the counters are cumulative),
-- so summaries can be rebuilt from this table alone.
CREATE TABLE reports (
	id       INTEGER PRIMARY KEY,
	ts       INTEGER NOT NULL,
	reporter INTEGER NOT NULL,
	n        INTEGER NOT NULL,
	entries  BLOB NOT NULL
);

-- The newest entry of each pair, packed per reporter: the matrix.
CREATE TABLE latest (
	reporter INTEGER PRIMARY KEY,
	ts       INTEGER NOT NULL,
	entries  BLOB NOT NULL
);

-- Per-pair summaries per time bucket of res seconds (bucket = start, unix s): what the history
-- plot draws. Sums and counts, so partial buckets merge by addition.
CREATE TABLE summaries (
	res      INTEGER NOT NULL,
	pair     INTEGER NOT NULL,
	bucket   INTEGER NOT NULL,
	n        INTEGER NOT NULL,
	rtt_sum  INTEGER NOT NULL,
	rtt_min  INTEGER NOT NULL,
	rtt_max  INTEGER NOT NULL,
	rtt_p99  INTEGER NOT NULL,
	jit_sum  INTEGER NOT NULL,
	d_sent   INTEGER NOT NULL,
	d_lost   INTEGER NOT NULL,
	path     INTEGER NOT NULL,
	PRIMARY KEY (res, pair, bucket)
) WITHOUT ROWID;
CREATE INDEX summaries_age ON summaries (res, bucket);

-- Membership timeline.
CREATE TABLE events (
	id     INTEGER PRIMARY KEY,
	ts     INTEGER NOT NULL,
	mesh   TEXT NOT NULL,
	uuid   TEXT NOT NULL,
	kind   TEXT NOT NULL,
	addr   TEXT NOT NULL,
	detail TEXT NOT NULL
);
CREATE INDEX events_mesh_ts ON events (mesh, ts);
CREATE INDEX events_ts ON events (ts);

-- What each client said about itself: NAT behaviour and port-mapping results.
CREATE TABLE clients (
	mesh      TEXT NOT NULL,
	uuid      TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	addr      TEXT NOT NULL,
	public    TEXT NOT NULL,
	version   INTEGER NOT NULL,
	mapping   TEXT NOT NULL,
	filtering TEXT NOT NULL,
	hairpin   TEXT NOT NULL,
	portmap   TEXT NOT NULL,
	online    INTEGER NOT NULL,
	PRIMARY KEY (mesh, uuid)
) WITHOUT ROWID;
`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

// migrate brings the database to SchemaVersion, one transaction per step. A database newer than
// this build is refused (ErrSchemaTooNew) instead of being written with an older layout.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if v > len(steps) {
		return fmt.Errorf("%w: database has schema %d, this build knows %d", ErrSchemaTooNew, v, len(steps))
	}
	for ; v < len(steps); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", v+1, err)
		}
		// PRAGMA takes no bound parameters; v is an int.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %d: %w", v+1, err)
		}
	}
	return nil
}
