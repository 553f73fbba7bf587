-- Retention of the event outbox (malipo_gateway::retention): the worker
-- deletes finished events older than `events_retain_days`, oldest first.
-- The command log's retention reads by its primary key (book, sequence).
CREATE INDEX events_by_created ON events (created, id);
