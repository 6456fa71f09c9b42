-- A run cancelled through a server other than the one driving it: the
-- request waits on its job, and the driver sees it at its next lease renewal.
ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
