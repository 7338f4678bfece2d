-- The relay's slate (transcode mode, reelay.relay.slate) in a stream's health: since when KVS is fed the
-- "camera offline" picture (NULL: it is not), and how many of the slate's fragments KVS persisted since
-- the relay task started. Reported by the task on its lease beat, like the other health columns.
-- Conditional like 0005 (MySQL 8 has no ADD COLUMN IF NOT EXISTS); one ALTER, applied whole or not.
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'streams' AND COLUMN_NAME = 'slateSince') = 0,
  'ALTER TABLE streams
     ADD COLUMN slateSince DATETIME(3) NULL AFTER credentialsExpireAt,
     ADD COLUMN slateFragmentsPersisted BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER slateSince',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
