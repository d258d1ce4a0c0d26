package store

import (
	"context"
	"fmt"
)

// pruneChunk bounds the rows one retention transaction deletes, so flushes interleave.
const pruneChunk = 50000

// Prune deletes what is older than the retention (fine summaries after two days at most).
// The flush goroutine runs it hourly.
func (s *Store) Prune(ctx context.Context) error {
	now := s.opt.Now()
	s.lastPrune = now
	cut := now.Add(-s.opt.Retention)
	fineCut := now.Add(-min(s.opt.Retention, fineKeep))
	// Reports, by id range in chunks.
	for {
		done, err := s.pruneStep(ctx, func() (int64, error) {
			cutID, err := s.firstIDAtOrAfter(ctx, s.w, cut.UnixMilli())
			if err != nil {
				return 0, err
			}
			res, err := s.w.ExecContext(ctx, `DELETE FROM reports WHERE id < ? AND id < (SELECT min(id) FROM reports) + ?`,
				cutID, pruneChunk)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		})
		if err != nil {
			return fmt.Errorf("store: prune reports: %w", err)
		}
		if done {
			break
		}
	}
	// summaries is WITHOUT ROWID: delete the oldest bucket at a time (one transaction each).
	for _, r := range []struct{ res, cut int64 }{{fineRes, fineCut.Unix()}, {coarseRes, cut.Unix()}} {
		for {
			var n int64
			_, err := s.pruneStep(ctx, func() (int64, error) {
				res, err := s.w.ExecContext(ctx, `DELETE FROM summaries WHERE res = ? AND bucket =
					(SELECT min(bucket) FROM summaries WHERE res = ? AND bucket < ?)`, r.res, r.res, r.cut)
				if err != nil {
					return 0, err
				}
				n, err = res.RowsAffected()
				return n, err
			})
			if err != nil {
				return fmt.Errorf("store: prune summaries: %w", err)
			}
			if n == 0 {
				break
			}
		}
	}
	for _, q := range []string{"DELETE FROM events WHERE ts < ?", "DELETE FROM clients WHERE ts < ? AND online = 0"} {
		if _, err := s.pruneStep(ctx, func() (int64, error) {
			res, err := s.w.ExecContext(ctx, q, cut.UnixMilli())
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}); err != nil {
			return fmt.Errorf("store: prune: %w", err)
		}
	}
	// Pairs whose newest report is older than the retention: forget them entirely.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	old := map[int64][]int64{} // reporter → pairs
	for rep, m := range s.latest {
		for p, e := range m {
			if e.ts < cut.UnixMilli() {
				old[rep] = append(old[rep], p)
			}
		}
	}
	if len(old) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: prune pairs: %w", err)
	}
	defer tx.Rollback()
	for rep, pairs := range old {
		keep := map[int64]entry{}
		for p, e := range s.latest[rep] {
			keep[p] = e
		}
		for _, p := range pairs {
			delete(keep, p)
			if _, err := tx.ExecContext(ctx, "DELETE FROM pairs WHERE id = ?", p); err != nil {
				return fmt.Errorf("store: prune pairs: %w", err)
			}
		}
		if len(keep) == 0 {
			_, err = tx.ExecContext(ctx, "DELETE FROM latest WHERE reporter = ?", rep)
			if err == nil {
				_, err = tx.ExecContext(ctx, "DELETE FROM reporters WHERE id = ?", rep)
			}
		} else {
			base, blob := encodeEntries(keep, nil)
			_, err = tx.ExecContext(ctx, "INSERT OR REPLACE INTO latest (reporter, ts, entries) VALUES (?, ?, ?)", rep, base, blob)
		}
		if err != nil {
			return fmt.Errorf("store: prune pairs: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: prune pairs: %w", err)
	}
	s.amu.Lock()
	defer s.amu.Unlock()
	s.lmu.Lock()
	defer s.lmu.Unlock()
	for rep, pairs := range old {
		for _, p := range pairs {
			delete(s.latest[rep], p)
			delete(s.pairs, s.pairIDs[p])
			delete(s.pairIDs, p)
			delete(s.pairRep, p)
			delete(s.open, p)
		}
		if len(s.latest[rep]) == 0 {
			k := s.repKeys[rep]
			delete(s.latest, rep)
			delete(s.meshReps[k.mesh], rep)
			if len(s.meshReps[k.mesh]) == 0 {
				delete(s.meshReps, k.mesh)
			}
			delete(s.reporters, k)
			delete(s.repKeys, rep)
		}
	}
	return nil
}

// pruneStep runs one deletion under the writer lock; done when it deleted less than a chunk.
func (s *Store) pruneStep(ctx context.Context, fn func() (int64, error)) (bool, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n, err := fn()
	return n < pruneChunk, err
}
