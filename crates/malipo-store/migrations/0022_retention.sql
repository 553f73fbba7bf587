-- Retention of the event outbox (malipo_gateway::retention): the worker
-- deletes finished events older than `events_retain_days`, oldest first.
-- The command log's retention reads by its primary key (book, sequence).
CREATE INDEX events_by_created ON events (created, id);

-- The highest feed number among the events the retention deleted: a live
-- feed resume from before it is refused (`resume_unavailable`) instead of
-- replaying with a silent gap.
ALTER TABLE event_feed_head ADD COLUMN pruned_through BIGINT NOT NULL DEFAULT 0;
