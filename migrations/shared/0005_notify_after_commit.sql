-- Feed readers are no longer woken by a trigger: a transaction that NOTIFYs holds a
-- cluster-wide lock from its commit until its commit record is flushed, so notifying
-- from every append serialized all writers' commits (no group commit). Writers now
-- wake readers after committing (in memory, and through a separate, asynchronously
-- committed NOTIFY for other processes); readers also poll.
DROP TRIGGER events_appended ON events;
DROP FUNCTION notify_events_appended();
